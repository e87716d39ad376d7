//! `ecs-bootstrap hup` (bin/cfn-hup@25fabe91): the configuration read once, then one poll
//! (`--once`/`--no-daemon`) or the poll loop: the first poll at a random point of the first
//! interval, then every interval ± a jitter sized to it; SIGTERM/SIGINT end it after the current
//! action. READY=1 is sent once the configuration and the state are read.
//!
//! Ours, where cfn-hup differs (docs/hup.md): cfn-hup polls at once and then every
//! `interval*60 + randint(-30, 30)` seconds (bin/cfn-hup:124-125), so a fleet booted together
//! polls in lockstep; here the first poll is spread over the whole first interval (the boot run
//! has just applied the Metadata, so nothing is late for it) and the jitter is ±10 % of the
//! interval, at most cfn-hup's 30 s.

use std::path::{Path, PathBuf};

use super::cfn::Cfn;
use super::conf::{self, Config};
use super::poll::{self, Pace, Report};
use super::schedule::{first_delay, next_delay};
use super::stop::Stop;
use super::store::{Origin, Store};
use crate::error::{Error, Result};
use crate::sys::fs::Root;
use crate::sys::process::Runner;

/// The environment variable that shortens the interval, for tests only (as `--interval-seconds`).
pub const INTERVAL_ENV: &str = "ECS_BOOTSTRAP_HUP_INTERVAL_SECONDS";

#[derive(Debug, Clone)]
pub struct Options {
    /// `-c/--config`, as an instance path (mapped under `root`).
    pub config_dir: PathBuf,
    pub root: PathBuf,
    /// `--once`/`--no-daemon`.
    pub once: bool,
    /// `-v` given.
    pub verbose: bool,
    /// Test only: the interval in seconds instead of cfn-hup.conf's minutes.
    pub interval_secs: Option<u64>,
}

/// What [`load`] read: the configuration, and what the daemon mode needs from it.
pub struct Loaded {
    pub config: Config,
    pub verbose: bool,
    /// The poll interval, and the unit of a failed action's backoff (`--once` too).
    pub interval_secs: u64,
    /// Daemon mode only: cfn-hup reads and checks it only there.
    pub umask: Option<u32>,
}

fn config_error(e: impl std::fmt::Display) -> Error {
    Error::HupConfig(e.to_string())
}

/// `path` (an instance path) under `root`.
fn under(root: &Path, path: &Path) -> Result<PathBuf> {
    if root == Path::new("/") {
        return Ok(path.to_path_buf());
    }
    Root::new(root).map(&path.to_string_lossy())
}

/// Reads and checks the configuration as cfn-hup does before it starts (exit 1 on an error).
pub fn load(o: &Options) -> Result<Loaded> {
    let config = conf::load(&under(&o.root, &o.config_dir)?).map_err(config_error)?;
    let verbose = config.main.verbose(o.verbose).map_err(config_error)?;
    tracing::info!(files = ?config.hook_files, hooks = config.hooks.len(), "hooks read");
    if !config.main.multi_threaded {
        // cfn-hup reads it for its on.command (SQS) hooks only (update_hooks.py:137-158@25fabe91).
        tracing::info!(
            "multi-threaded = false: it only concerns on.command hooks, which are not supported"
        );
    }
    let (interval_secs, umask) = if o.once {
        // The backoff's unit only: cfn-hup does not read (or check) `interval` here.
        let minutes = config
            .main
            .interval_minutes()
            .unwrap_or(conf::DEFAULT_INTERVAL_MINUTES);
        (o.interval_secs.unwrap_or(minutes * 60), None)
    } else {
        let minutes = config.main.interval_minutes().map_err(config_error)?;
        let umask = config.main.umask().map_err(config_error)?;
        (o.interval_secs.unwrap_or(minutes * 60).max(1), Some(umask))
    };
    Ok(Loaded {
        config,
        verbose,
        interval_secs,
        umask,
    })
}

fn random() -> f64 {
    crate::sys::retry::unit_random("hup")
}

/// Which mode the command runs in: cfn-hup's hooks, or the launch resource's blocks.
pub enum Mode {
    Hooks(Box<Loaded>),
    /// No cfn-hup.conf (src/hup/launch.rs).
    Launch {
        interval_secs: u64,
    },
}

/// The zero-config mode: the default configuration directory has no cfn-hup.conf. A `-c DIR`
/// other than the default without one stays cfn-hup's error (exit 1).
pub fn zero_config(o: &Options) -> bool {
    o.config_dir == Path::new(conf::DEFAULT_CONFIG_DIR)
        && under(&o.root, &o.config_dir.join("cfn-hup.conf"))
            .map(|p| std::fs::symlink_metadata(p).is_err())
            .unwrap_or(false)
}

/// The mode and what it needs before the runtime starts (a configuration error is exit 1).
pub fn mode(o: &Options) -> Result<(Mode, bool)> {
    if zero_config(o) {
        let interval_secs = o
            .interval_secs
            .unwrap_or(conf::DEFAULT_INTERVAL_MINUTES * 60);
        return Ok((Mode::Launch { interval_secs }, o.verbose));
    }
    let loaded = load(o)?;
    let verbose = loaded.verbose;
    Ok((Mode::Hooks(Box::new(loaded)), verbose))
}

/// What a mode polls, and with which client.
enum Watched {
    Hooks(Vec<super::conf::Hook>, Cfn),
    Launch(Box<super::launch::Watch>, Cfn, super::launch::Host),
}

impl Watched {
    async fn poll(
        &self,
        store: &mut Store,
        runner: &dyn Runner,
        pace: &Pace,
        stop: &Stop,
    ) -> Report {
        match self {
            Watched::Hooks(hooks, cfn) => poll::poll(hooks, cfn, store, runner, pace, stop).await,
            Watched::Launch(w, cfn, host) => super::launch::poll(w, cfn, store, host, pace).await,
        }
    }
}

/// Runs the command: one poll, or the loop until SIGTERM.
pub async fn run(o: &Options, mode: Mode, runner: &dyn Runner) -> Result<()> {
    match mode {
        Mode::Hooks(loaded) => run_hooks(o, *loaded, runner).await,
        Mode::Launch { interval_secs } => {
            let root = Root::new(&o.root);
            let identity = crate::boot::identity::from_imds().await?;
            let w = super::launch::find(&root, &identity).await?;
            let cfn = Cfn::for_stack(
                &w.stack,
                &w.region,
                crate::aws::CfnAuth::Identity(crate::aws::identity_auth::ProofSource::Imds),
            )
            .await?;
            tracing::info!(stack = %w.stack, resource = %w.resource, configsets = ?w.configsets, "zero-config: watching the launch resource");
            let host = super::launch::Host {
                root: o.root.clone(),
                identity,
                runner: crate::sys::process::real(),
            };
            run_loop(
                o,
                Watched::Launch(Box::new(w), cfn, host),
                interval_secs,
                runner,
            )
            .await
        }
    }
}

async fn run_hooks(o: &Options, loaded: Loaded, runner: &dyn Runner) -> Result<()> {
    let Loaded {
        config,
        interval_secs,
        umask,
        ..
    } = loaded;
    for s in &config.skipped {
        tracing::warn!("{s}");
    }
    for (path, why) in &config.unreadable {
        tracing::warn!(file = %path.display(), "hooks file not read: {why}");
    }
    if let Some(mask) = umask {
        // bin/cfn-hup:210-221, 224: the daemon's (and so its actions') umask.
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
        tracing::debug!("umask {mask:04o}");
    }
    let cfn = Cfn::new(&config.main, &o.root).await.map_err(|e| match e {
        Error::Usage(m) => Error::HupConfig(m),
        e => e,
    })?;
    tracing::info!(
        stack = %config.main.stack,
        hooks = config.hooks.len(),
        interval_secs = (!o.once).then_some(interval_secs),
        "watching"
    );
    run_loop(o, Watched::Hooks(config.hooks, cfn), interval_secs, runner).await
}

/// The state read, then one poll (`--once`) or the polls until SIGTERM, the state saved after
/// each.
async fn run_loop(
    o: &Options,
    watched: Watched,
    interval_secs: u64,
    runner: &dyn Runner,
) -> Result<()> {
    let root = Root::new(&o.root);
    let (mut store, origin) = Store::load(&root).map_err(|e| Error::HupState(e.to_string()))?;
    match origin {
        Origin::CfnHup => tracing::info!("state imported from cfn-hup's metadata db"),
        Origin::Unreadable(why) => tracing::warn!("state not readable, starting afresh: {why}"),
        Origin::Ours | Origin::Fresh => {}
    }
    let stop = Stop::default();
    watch_signals(&stop)?;
    let pace = Pace {
        interval_secs,
        now_unix: poll::now_unix,
    };
    if o.once {
        crate::sys::notify::ready("polling once");
        let r = watched.poll(&mut store, runner, &pace, &stop).await;
        log_report(&r);
        return store
            .save(&root)
            .map_err(|e| Error::HupState(e.to_string()));
    }
    crate::sys::notify::ready("watching the stack");
    let mut delay = first_delay(interval_secs, random());
    tracing::info!(first_poll_in_secs = delay.as_secs_f64(), "first poll");
    loop {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.wait() => break,
        }
        let r = watched.poll(&mut store, runner, &pace, &stop).await;
        log_report(&r);
        if let Err(e) = store.save(&root) {
            // The next poll tries again; the actions that ran may then run once more.
            tracing::error!("could not save the hup state: {e}");
        }
        if stop.requested() {
            break;
        }
        delay = next_delay(interval_secs, random());
    }
    tracing::info!("stopped");
    Ok(())
}

fn log_report(r: &Report) {
    if r.ran + r.errors + r.deferred > 0 {
        tracing::info!(
            actions = r.ran,
            failed = r.failed,
            errors = r.errors,
            deferred = r.deferred,
            "poll done"
        );
    } else {
        tracing::debug!("poll done: no change");
    }
}

/// SIGTERM (systemd's stop) and SIGINT request a stop.
fn watch_signals(stop: &Stop) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| Error::setup("signal handling", e))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| Error::setup("signal handling", e))?;
    let stop = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("stop requested: finishing the current action");
        stop.request();
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn daemon_only_options_are_checked_in_daemon_mode_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("etc/cfn");
        write(&dir, "cfn-hup.conf", "[main]\nstack=S\ninterval=0\n");
        write(
            &dir,
            "hooks.conf",
            "[h]\ntriggers=post.add\npath=Resources.R.Metadata\naction=true\n",
        );
        let mut o = Options {
            config_dir: "/etc/cfn".into(),
            root: root.path().into(),
            once: true,
            verbose: false,
            interval_secs: None,
        };
        assert!(load(&o).is_ok());
        o.once = false;
        let e = load(&o).err().unwrap();
        assert_eq!(e.exit_code(), 1, "{e}");
        assert!(e.to_string().contains("Invalid interval"), "{e}");
        write(
            &dir,
            "cfn-hup.conf",
            "[main]\nstack=S\ninterval=2\numask=027\n",
        );
        let l = load(&o).unwrap();
        assert_eq!((l.interval_secs, l.umask), (120, Some(0o027)));
        o.interval_secs = Some(3);
        assert_eq!(load(&o).unwrap().interval_secs, 3);
    }
}
