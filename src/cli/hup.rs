//! `ecs-bootstrap hup` (also run as `cfn-hup`): cfn-hup's command line (bin/cfn-hup:50-58
//! @25fabe91) plus ours. The work is in [`crate::hup::daemon`].

use std::path::PathBuf;

use clap::Args;

use crate::hup::{conf::DEFAULT_CONFIG_DIR, daemon};

#[derive(Debug, Args, Clone)]
pub struct HupArgs {
    /// The configuration directory: cfn-hup.conf, hooks.conf and hooks.d/ (as cfn-hup's -c).
    #[arg(short = 'c', long = "config", value_name = "DIR", default_value = DEFAULT_CONFIG_DIR)]
    pub config: PathBuf,
    /// Poll once, run the actions that fire and exit (cfn-hup's --no-daemon).
    #[arg(long)]
    pub no_daemon: bool,
    /// The same as --no-daemon: one poll, for a systemd timer or a test.
    #[arg(long)]
    pub once: bool,
    /// Read and write every file under DIR instead of / (configuration, state, credential file).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// For tests only: poll every N seconds instead of cfn-hup.conf's `interval` minutes.
    #[arg(long, value_name = "N", env = daemon::INTERVAL_ENV,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub interval_seconds: Option<u64>,
    /// Debug logging (as cfn-hup's -v, or `verbose = true` in cfn-hup.conf); -vv trace.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl HupArgs {
    pub fn options(&self) -> daemon::Options {
        daemon::Options {
            config_dir: self.config.clone(),
            root: self.root.clone(),
            once: self.once || self.no_daemon,
            verbose: self.verbose > 0,
            interval_secs: self.interval_seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> super::HupArgs {
        let argv = std::iter::once("ecs-bootstrap").chain(args.iter().copied());
        match Cli::try_parse_from(argv).expect("parses").command {
            Some(Command::Hup(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cfn_hup_flags_and_ours() {
        let o = parse(&["hup"]).options();
        assert_eq!(o.config_dir, std::path::PathBuf::from("/etc/cfn"));
        assert!(!o.once && !o.verbose && o.interval_secs.is_none());
        let o = parse(&["hup", "--no-daemon", "-c", "/x", "-v"]).options();
        assert!(o.once && o.verbose);
        assert_eq!(o.config_dir, std::path::PathBuf::from("/x"));
        let o = parse(&["hup", "--once", "--root", "/r", "--interval-seconds", "2"]).options();
        assert!(o.once);
        assert_eq!(o.interval_secs, Some(2));
        assert_eq!(o.root, std::path::PathBuf::from("/r"));
        let argv = ["ecs-bootstrap", "hup", "--interval-seconds", "0"];
        assert!(Cli::try_parse_from(argv).is_err());
    }
}
