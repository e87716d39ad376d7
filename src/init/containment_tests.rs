//! `--root DIR` contains every write (issue 8): each case is a way a tree under DIR — made by
//! Init `files`, by an earlier archive, or by someone with write access to DIR — used to send
//! a write (or a hard link) to the host. Each runs with the kernel's resolver and with the
//! walk that stands in for it on kernels without `openat2`.

use std::io::Write;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use serde_json::json;

use super::auth::AuthConfig;
use super::fetch::Fetcher;
use super::{files, sources};
use crate::sys::fs::Root;

/// A test per resolver: `$name` with the kernel's, `$name`_walk with the fallback walk.
macro_rules! both {
    ($name:ident, $walk:ident, $body:expr) => {
        #[test]
        fn $name() {
            $body()
        }
        #[test]
        fn $walk() {
            crate::sys::fs::resolve::with_walk($body)
        }
    };
}

/// A root and, next to it, a host directory nothing may be written into.
fn root_and_host() -> (tempfile::TempDir, Root, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    let host = d.path().join("host");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&host).unwrap();
    std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o755)).unwrap();
    (d, Root::new(&root), host)
}

fn assert_untouched(host: &Path) {
    let names: Vec<_> = std::fs::read_dir(host)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names.iter().all(|n| n == "victim"),
        "written into the host directory: {names:?}"
    );
    assert_eq!(
        std::fs::metadata(host).unwrap().mode() & 0o777,
        0o755,
        "the host directory was chmodded"
    );
    if let Ok(m) = std::fs::metadata(host.join("victim")) {
        assert_eq!(std::fs::read(host.join("victim")).unwrap(), b"keep");
        assert_eq!(m.nlink(), 1, "the host file got a hard link");
    }
}

fn file_spec(path: &str, spec: serde_json::Value) -> files::FileSpec {
    files::parse_at(&json!({ path: spec }), "I.config.files")
        .unwrap()
        .remove(0)
}

fn init_symlink_then_a_file_through_it() {
    let (_d, root, host) = root_and_host();
    let link = file_spec(
        "/opt/app",
        json!({"content": host.to_str().unwrap(), "mode": "120777"}),
    );
    files::apply(&link, &root, "config").unwrap();
    // The symlink entry itself still works: it is the link, never a path written through.
    assert_eq!(
        std::fs::read_link(root.dir().join("opt/app")).unwrap(),
        host
    );
    let pwned = file_spec("/opt/app/pwned", json!({"content": "x"}));
    let _ = files::apply(&pwned, &root, "config");
    assert_untouched(&host);
}
both!(
    init_files_symlink_does_not_lead_out_of_the_root,
    init_files_symlink_does_not_lead_out_of_the_root_walk,
    init_symlink_then_a_file_through_it
);

fn state_dir_is_a_symlink() {
    let (_d, root, host) = root_and_host();
    std::fs::create_dir_all(root.dir().join("var/lib")).unwrap();
    symlink(&host, root.dir().join("var/lib/ecs-bootstrap")).unwrap();
    for file in [super::record::FILE, crate::boot::state::FILE] {
        let _ = crate::boot::state::write_private_json(&root, file, &json!({"a": 1}));
    }
    assert_untouched(&host);
}
both!(
    state_dir_symlink_does_not_lead_out_of_the_root,
    state_dir_symlink_does_not_lead_out_of_the_root_walk,
    state_dir_is_a_symlink
);

fn run_lock_is_a_symlink() {
    let (_d, root, host) = root_and_host();
    std::fs::write(host.join("victim"), "keep").unwrap();
    let state = root.dir().join("var/lib/ecs-bootstrap");
    std::fs::create_dir_all(&state).unwrap();
    symlink(host.join("victim"), state.join("run.lock")).unwrap();
    let refused = crate::boot::once::lock(&root).err();
    assert_untouched(&host);
    let e = refused
        .expect("a symlink at run.lock is refused")
        .to_string();
    assert!(e.contains("run.lock"), "{e}");
    assert_untouched(&host);
}
both!(
    run_lock_symlink_is_not_followed,
    run_lock_symlink_is_not_followed_walk,
    run_lock_is_a_symlink
);

fn image_symlinks_resolve_inside() {
    let (_d, root, _host) = root_and_host();
    std::fs::create_dir_all(root.dir().join("var")).unwrap();
    std::fs::create_dir_all(root.dir().join("run")).unwrap();
    // An image's own absolute symlink means the image's /run, not the host's.
    symlink("/run", root.dir().join("var/run")).unwrap();
    files::apply(
        &file_spec("/var/run/x", json!({"content": "1"})),
        &root,
        "c",
    )
    .unwrap();
    assert_eq!(std::fs::read(root.dir().join("run/x")).unwrap(), b"1");
}
both!(
    an_images_own_symlinks_resolve_inside_it,
    an_images_own_symlinks_resolve_inside_it_walk,
    image_symlinks_resolve_inside
);

/// Unpacks the tar `bytes` into `target` within `root`, from a local file.
fn unpack_source(root: &Root, target: &str, bytes: &[u8]) -> crate::error::Result<()> {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    let spec = sources::SourceSpec {
        target: target.into(),
        url: f.path().display().to_string(),
        strip_top_dir: false,
    };
    let auth = AuthConfig::default();
    let fetcher = Fetcher::new(&auth).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(sources::apply(&spec, root, &fetcher, "config"))
}

use super::sources::tests::tar_entries as tar;

fn archive_symlink_then_next_archive() {
    use tar::EntryType as T;
    let (_d, root, host) = root_and_host();
    let first = tar(&[("l", T::Symlink, host.to_str().unwrap(), b"")]);
    unpack_source(&root, "/opt/a", &first).unwrap();
    // The link as the next archive's target, and as a directory in the next archive.
    let planted = tar(&[("planted", T::Regular, "", b"x")]);
    let as_target = unpack_source(&root, "/opt/a/l", &planted);
    let through = tar(&[("l/planted2", T::Regular, "", b"x")]);
    let e = unpack_source(&root, "/opt/a", &through);
    assert_untouched(&host);
    // Refused, not merely redirected: the link leads out of the next archive's target.
    let e = e.unwrap_err().to_string();
    assert!(e.contains("'l/planted2'") && e.contains("outside"), "{e}");
    assert!(
        as_target.is_err(),
        "the link's target does not exist in the root"
    );
}
both!(
    an_archives_symlink_does_not_lead_the_next_archive_out,
    an_archives_symlink_does_not_lead_the_next_archive_out_walk,
    archive_symlink_then_next_archive
);

fn hard_link_to_a_host_file() {
    use tar::EntryType as T;
    let (_d, root, host) = root_and_host();
    std::fs::write(host.join("victim"), "keep").unwrap();
    let first = tar(&[("l", T::Symlink, host.to_str().unwrap(), b"")]);
    unpack_source(&root, "/opt/a", &first).unwrap();
    let second = tar(&[("h", T::Link, "l/victim", b"")]);
    let e = unpack_source(&root, "/opt/a", &second);
    assert_untouched(&host);
    let e = e.unwrap_err().to_string();
    assert!(e.contains("'h'") && e.contains("outside"), "{e}");
    assert!(std::fs::symlink_metadata(root.dir().join("opt/a/h")).is_err());
}
both!(
    no_hard_link_to_a_host_file,
    no_hard_link_to_a_host_file_walk,
    hard_link_to_a_host_file
);
