//! `vd config`: the config buckets pods read their env from.

use super::Ctx;
use crate::args::{ConfigArgs, Output};
use crate::error::CliError;
use crate::render::{self, table};
use std::collections::BTreeMap;
use vd_server::types::{ConfigRequest, ConfigView};

const VERBS: [&str; 4] = ["set", "get", "unset", "list"];

/// A parsed `vd config` invocation.
#[derive(Debug, PartialEq, Eq)]
struct Invocation {
    scope: Option<String>,
    name: Option<String>,
    verb: String,
    args: Vec<String>,
    no_restart: bool,
}

/// Accepts both `vd config SCOPE[/NAME] VERB ARGS` and the flag form `vd config VERB -s S -n N ARGS`.
fn parse(a: ConfigArgs) -> Result<Invocation, CliError> {
    let mut scope = a.scope;
    let mut name = a.name;
    let mut no_restart = a.no_restart;
    let mut words = Vec::new();
    let mut it = a.rest.into_iter();
    while let Some(w) = it.next() {
        match w.as_str() {
            "-s" | "--scope" => scope = it.next(),
            "-n" | "--name" => name = it.next(),
            "--no-restart" => no_restart = true,
            _ => words.push(w),
        }
    }
    let usage = || {
        CliError::usage(
            "missing config verb",
            "vd config SCOPE[/NAME] set K=V… | get [K] | unset K… | list",
        )
    };
    let first = words.first().cloned().ok_or_else(usage)?;
    let (verb, args) = if VERBS.contains(&first.as_str()) {
        (first, words[1..].to_vec())
    } else {
        let (s, n) = match first.split_once('/') {
            Some((s, n)) => (s.to_string(), Some(n.to_string())),
            None => (first.clone(), None),
        };
        scope = Some(s);
        if n.is_some() {
            name = n;
        }
        let verb = words.get(1).cloned().ok_or_else(usage)?;
        if !VERBS.contains(&verb.as_str()) {
            return Err(CliError::usage(
                format!("unknown config verb `{verb}`"),
                "use set, get, unset or list",
            ));
        }
        (verb, words[2..].to_vec())
    };
    Ok(Invocation {
        scope,
        name,
        verb,
        args,
        no_restart,
    })
}

/// `vd config …`.
pub async fn config(ctx: &Ctx, a: ConfigArgs) -> Result<(), CliError> {
    let inv = parse(a)?;
    let Some(scope) = inv.scope.clone() else {
        if inv.verb == "list" {
            let all: Vec<ConfigView> = ctx.client.get("/v1/config").await?;
            render::print(ctx.output, &all, || {
                let mut t = table(&["BUCKET", "KEYS"]);
                for b in &all {
                    let level = match &b.name {
                        Some(n) => format!("{}/{n}", b.scope),
                        None => b.scope.clone(),
                    };
                    t.add_row(vec![
                        level,
                        b.vars.keys().cloned().collect::<Vec<_>>().join(", "),
                    ]);
                }
                t
            });
            return Ok(());
        }
        return Err(CliError::usage(
            "which bucket?",
            "write `vd config SCOPE[/NAME] …` or pass -s SCOPE [-n NAME]",
        ));
    };
    let q = inv
        .name
        .as_ref()
        .map(|n| format!("?name={n}"))
        .unwrap_or_default();
    match inv.verb.as_str() {
        "set" | "unset" => {
            let mut req = ConfigRequest {
                name: inv.name.clone(),
                no_restart: inv.no_restart,
                ..Default::default()
            };
            if inv.args.is_empty() {
                return Err(CliError::usage(
                    format!("nothing to {}", inv.verb),
                    "e.g. vd config data/cache set KEY=VALUE",
                ));
            }
            for arg in &inv.args {
                if inv.verb == "set" {
                    let (k, v) = arg.split_once('=').ok_or_else(|| {
                        CliError::usage(
                            format!("`{arg}` is not KEY=VALUE"),
                            "e.g. vd config data/cache set MAXMEMORY=1gb",
                        )
                    })?;
                    req.set.insert(k.to_string(), v.to_string());
                } else {
                    req.unset.push(arg.clone());
                }
            }
            let view: ConfigView = ctx
                .client
                .post(&format!("/v1/config/{scope}"), &req)
                .await?;
            if ctx.output == Output::Json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&view).unwrap_or_default()
                );
            } else {
                let keys: Vec<&str> = req
                    .set
                    .keys()
                    .map(String::as_str)
                    .chain(req.unset.iter().map(String::as_str))
                    .collect();
                let restart = if inv.no_restart {
                    " (pods pick it up on their next restart)"
                } else {
                    ""
                };
                outln!(
                    "{} {}{restart}",
                    if inv.verb == "set" { "set" } else { "unset" },
                    keys.join(", ")
                );
            }
        }
        "get" | "list" => {
            let view: ConfigView = ctx.client.get(&format!("/v1/config/{scope}{q}")).await?;
            if let Some(key) = inv.args.first().filter(|_| inv.verb == "get") {
                match view.vars.get(key) {
                    Some(v) => outln!("{v}"),
                    None => {
                        return Err(CliError::usage(
                            format!("`{key}` is not set"),
                            "see `vd config SCOPE[/NAME] list`",
                        ))
                    }
                }
                return Ok(());
            }
            // Listings never show secrets; `get KEY` prints one value on purpose.
            let vars: BTreeMap<String, String> = view
                .vars
                .iter()
                .map(|(k, v)| (k.clone(), redact(k, v)))
                .collect();
            render::print(ctx.output, &vars, || {
                let mut t = table(&["KEY", "VALUE"]);
                for (k, v) in &vars {
                    t.add_row(vec![k.clone(), v.clone()]);
                }
                t
            });
        }
        _ => unreachable!("verbs are checked in parse"),
    }
    Ok(())
}

/// Hides secrets in listings: values of `*PASSWORD*`, `*SECRET*`, `*TOKEN*` keys, and the
/// password part of URLs (`redis://user:pw@host`).
fn redact(key: &str, value: &str) -> String {
    let k = key.to_ascii_uppercase();
    if ["PASSWORD", "SECRET", "TOKEN", "AUTH"]
        .iter()
        .any(|s| k.contains(s))
    {
        return "<redacted>".into();
    }
    match (value.find("://"), value.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &value[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => {
                    format!("{}{user}:<redacted>{}", &value[..scheme + 3], &value[at..])
                }
                None => value.to_string(),
            }
        }
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(rest: &[&str]) -> ConfigArgs {
        ConfigArgs {
            scope: None,
            name: None,
            no_restart: false,
            rest: rest.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn listings_redact_secrets() {
        assert_eq!(redact("REDIS_PASSWORD", "abc"), "<redacted>");
        assert_eq!(
            redact("REDIS_URL", "redis://default:abc@cache-0.data.voodu:6379"),
            "redis://default:<redacted>@cache-0.data.voodu:6379"
        );
        assert_eq!(redact("MODE", "fast"), "fast");
    }

    #[test]
    fn both_forms_parse() {
        let i = parse(a(&["data/pg", "set", "A=1", "--no-restart"])).unwrap();
        assert_eq!(
            (
                i.scope.as_deref(),
                i.name.as_deref(),
                i.verb.as_str(),
                i.no_restart
            ),
            (Some("data"), Some("pg"), "set", true)
        );
        let i = parse(a(&["set", "-s", "data", "-n", "pg", "POSTGRES_PASSWORD=x"])).unwrap();
        assert_eq!(
            (i.scope.as_deref(), i.name.as_deref(), i.args[0].as_str()),
            (Some("data"), Some("pg"), "POSTGRES_PASSWORD=x")
        );
        let i = parse(a(&["myapp", "get", "REDIS_URL"])).unwrap();
        assert_eq!(
            (i.scope.as_deref(), i.name, i.verb.as_str()),
            (Some("myapp"), None, "get")
        );
        assert!(parse(a(&["data", "frob"])).is_err());
        assert!(parse(a(&[])).is_err());
    }
}
