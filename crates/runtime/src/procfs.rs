//! Reading process facts from /proc.

/// State and start time of a process: `(state char, start time in clock ticks)`.
pub fn stat(pid: u32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&s)
}

/// Parses `/proc/<pid>/stat`; the command name may contain spaces and parentheses, so fields
/// are counted after the last `)`.
pub fn parse_stat(s: &str) -> Option<(char, u64)> {
    let rest = &s[s.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: field 3 (state) is index 0, field 22 (starttime) is index 19.
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// Whether `pid` is the same live process that had `start` as its start time.
pub fn alive(pid: u32, start: u64) -> bool {
    matches!(stat(pid), Some((state, s)) if s == start && state != 'Z' && state != 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_parens() {
        let line = "1234 (redis (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 4 0 98765 1000 200";
        assert_eq!(parse_stat(line), Some(('S', 98765)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_process_is_alive() {
        let pid = std::process::id();
        let (_, start) = stat(pid).unwrap();
        assert!(alive(pid, start));
        assert!(!alive(pid, start + 1));
    }
}
