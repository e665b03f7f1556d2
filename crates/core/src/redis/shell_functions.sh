# conf_quote VALUE: sets _quoted to VALUE as a redis.conf double-quoted string (\ and "
# escaped), so any byte but a line break survives Redis' config parser unchanged.
conf_quote() {
  _rest=$1
  _quoted=
  while :; do
    case $_rest in
      *[\\\"]*) ;;
      *) break ;;
    esac
    _pre=${_rest%%[\\\"]*}
    _rest=${_rest#"$_pre"}
    _quoted=$_quoted$_pre\\${_rest%"${_rest#?}"}
    _rest=${_rest#?}
  done
  _quoted=\"$_quoted$_rest\"
}

# ordinal NAME VALUE: sets _ord to VALUE without leading zeros, or dies if it is not a number.
ordinal() {
  case $2 in
    '' | *[!0-9]*) die "$1='$2' is not an ordinal (a number like 0, 1, 2)" ;;
  esac
  _ord=$2
  while :; do
    case $_ord in
      0?*) _ord=${_ord#0} ;;
      *) break ;;
    esac
  done
}
