//! `cfn-X` -> `ecs-bootstrap X`: installed as a symlink named `cfn-signal` (or `cfn-init`,
//! `cfn-get-metadata`, `cfn-hup`), the binary behaves as that command. Generic on purpose: any
//! subcommand the binary has is reachable this way, and no other.

use std::ffi::OsString;
use std::path::Path;

/// The subcommand a program name asks for: `cfn-signal` -> `signal`.
pub fn subcommand_for(program: &OsString) -> Option<String> {
    let name = Path::new(program).file_name()?.to_str()?;
    name.strip_prefix("cfn-")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Rewrites `args` (argv[0] first) so clap sees `ecs-bootstrap X rest...` when invoked as
/// `cfn-X`. Unknown `X` is an error message for the caller to print (exit 2).
pub fn rewrite(
    args: Vec<OsString>,
    is_subcommand: impl Fn(&str) -> bool,
) -> Result<Vec<OsString>, String> {
    let Some(program) = args.first() else {
        return Ok(args);
    };
    let Some(sub) = subcommand_for(program) else {
        return Ok(args);
    };
    if !is_subcommand(&sub) {
        return Err(format!(
            "invoked as cfn-{sub}, but this ecs-bootstrap has no '{sub}' command"
        ));
    }
    let mut out = Vec::with_capacity(args.len() + 1);
    // Usage lines then read `ecs-bootstrap signal ...`, which is what it is.
    out.push(OsString::from("ecs-bootstrap"));
    out.push(OsString::from(sub));
    out.extend(args.into_iter().skip(1));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn dispatches_by_basename() {
        let known = |s: &str| ["signal", "get-metadata", "init"].contains(&s);
        assert_eq!(
            rewrite(os(&["/opt/aws/bin/cfn-signal", "-e", "0"]), known).unwrap(),
            os(&["ecs-bootstrap", "signal", "-e", "0"])
        );
        assert_eq!(
            rewrite(os(&["cfn-get-metadata", "-s", "x"]), known).unwrap(),
            os(&["ecs-bootstrap", "get-metadata", "-s", "x"])
        );
        assert_eq!(
            rewrite(os(&["/usr/bin/ecs-bootstrap", "run"]), known).unwrap(),
            os(&["/usr/bin/ecs-bootstrap", "run"])
        );
        let e = rewrite(os(&["cfn-nope"]), known).unwrap_err();
        assert!(e.contains("cfn-nope") && e.contains("'nope'"), "{e}");
    }
}
