use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::init::auth::AuthConfig;
use crate::init::test_http::Server;

fn parse(v: &serde_json::Value, path: &str) -> Result<Vec<SourceSpec>> {
    super::parse(&crate::init::test_node(v, path))
}

/// A tar with `entries` (path, content); paths are written raw, so `../x` can be made.
fn tar_bytes(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o640);
        h.set_entry_type(if path.ends_with('/') {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn tar_with_link(link: &str, to: &str, then: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_path(link).unwrap();
    h.set_link_name(to).unwrap();
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    if let Some((p, d)) = then {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_path(p).unwrap();
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, d).unwrap();
    }
    b.into_inner().unwrap()
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn bz2(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zip_bytes(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o750);
    for (path, data) in entries {
        if path.ends_with('/') {
            w.add_directory(*path, opts).unwrap();
        } else {
            w.start_file(*path, opts).unwrap();
            w.write_all(data).unwrap();
        }
    }
    w.finish().unwrap().into_inner()
}

fn unpack_bytes(
    bytes: &[u8],
    strip: bool,
) -> (tempfile::TempDir, std::result::Result<usize, String>) {
    let d = tempfile::tempdir().unwrap();
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(bytes).unwrap();
    let target = d.path().join("t");
    fs::create_dir_all(&target).unwrap();
    let r = unpack(&mut f, &Dir::open(&target).unwrap(), strip);
    (d, r)
}

const APP: &[(&str, &[u8])] = &[
    ("app/", b""),
    ("app/bin/run", b"#!/bin/sh\n"),
    ("app/README", b"hi"),
];

#[test]
fn every_format_by_content() {
    let t = tar_bytes(APP);
    for (name, bytes) in [
        ("tar", t.clone()),
        ("gz", gz(&t)),
        ("bz2", bz2(&t)),
        ("xz", xz(&t)),
        ("zip", zip_bytes(APP)),
    ] {
        let (d, r) = unpack_bytes(&bytes, false);
        assert_eq!(r.unwrap_or_else(|e| panic!("{name}: {e}")), 3, "{name}");
        let run = d.path().join("t/app/bin/run");
        assert_eq!(fs::read(&run).unwrap(), b"#!/bin/sh\n", "{name}");
        let mode = fs::metadata(&run).unwrap().permissions().mode() & 0o777;
        assert!(mode == 0o640 || mode == 0o750, "{name}: {mode:o}");
    }
    let (_d, r) = unpack_bytes(b"just some text, not an archive at all", false);
    assert!(r.unwrap_err().contains("not a supported archive"));
}

#[test]
fn github_top_dir_is_stripped() {
    let t = tar_bytes(&[
        ("o-r-abc123/", b""),
        ("o-r-abc123/src/main.rs", b"fn main(){}"),
    ]);
    let (d, r) = unpack_bytes(&gz(&t), true);
    r.unwrap();
    assert!(d.path().join("t/src/main.rs").is_file());
    assert!(!d.path().join("t/o-r-abc123").exists());
    let (d, r) = unpack_bytes(&zip_bytes(&[("o-r-abc/", b""), ("o-r-abc/x", b"1")]), true);
    r.unwrap();
    assert_eq!(fs::read(d.path().join("t/x")).unwrap(), b"1");

    for url in [
        "https://github.com/o/r/tarball/main",
        "https://github.com/o/r/zipball/v1.2",
        "https://github.com/o/r/archive/refs/tags/v1.tar.gz",
        "https://github.com/o/r/archive/main.zip",
        "https://codeload.github.com/o/r/tar.gz/refs/heads/main",
        "https://api.github.com/repos/o/r/tarball/main",
    ] {
        assert!(is_github_archive(url), "{url}");
    }
    for url in [
        "https://github.com/o/r/releases/download/v1/app.tar.gz",
        "https://example.com/o/r/tarball/main",
        "s3://b/github.com/o/r/tarball/x",
    ] {
        assert!(!is_github_archive(url), "{url}");
    }
}

#[test]
fn escaping_entries_are_refused() {
    let (d, r) = unpack_bytes(&gz(&tar_bytes(&[("../evil", b"x")])), false);
    let e = r.unwrap_err();
    assert!(e.contains("'../evil'") && e.contains("outside"), "{e}");
    assert!(!d.path().join("evil").exists());

    let (_d, r) = unpack_bytes(&tar_bytes(&[("/etc/evil", b"x")]), false);
    assert!(r.unwrap_err().contains("'/etc/evil'"));

    let (d, r) = unpack_bytes(&zip_bytes(&[("ok", b"1"), ("a/../../evil", b"x")]), false);
    let e = r.unwrap_err();
    assert!(e.contains("a/../../evil"), "{e}");
    assert!(!d.path().join("evil").exists());
    // Checked before anything is written: the good entry before the bad one is not there.
    assert!(!d.path().join("t/ok").exists());

    // A symlink out of the tree may exist, but nothing may be written through it.
    let outside = tempfile::tempdir().unwrap();
    let bytes = tar_with_link(
        "link",
        outside.path().to_str().unwrap(),
        Some(("link/x", b"pwned")),
    );
    let (d, r) = unpack_bytes(&bytes, false);
    let e = r.unwrap_err();
    assert!(e.contains("'link/x'") && e.contains("symlink"), "{e}");
    assert!(!outside.path().join("x").exists());
    // Refused in the checking pass: not even the link itself was written.
    assert!(fs::symlink_metadata(d.path().join("t/link")).is_err());
}

#[test]
fn files_replace_old_symlinks_instead_of_following_them() {
    let (d, r) = unpack_bytes(&tar_bytes(&[("f", b"new")]), false);
    r.unwrap();
    let victim = d.path().join("victim");
    fs::write(&victim, "keep").unwrap();
    let f = d.path().join("t/f");
    fs::remove_file(&f).unwrap();
    std::os::unix::fs::symlink(&victim, &f).unwrap();
    let mut a = tempfile::tempfile().unwrap();
    a.write_all(&tar_bytes(&[("f", b"new")])).unwrap();
    unpack(&mut a, &Dir::open(&d.path().join("t")).unwrap(), false).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"keep");
    assert_eq!(fs::read(&f).unwrap(), b"new");
    assert!(!fs::symlink_metadata(&f).unwrap().file_type().is_symlink());
}

#[test]
fn parse_checks_targets() {
    let v = parse(
        &serde_json::json!({"/opt/b": "https://x/b.zip", "/opt/a": "https://github.com/o/r/tarball/main"}),
        "I.config.sources",
    )
    .unwrap();
    assert_eq!(v[0].target, "/opt/a");
    assert!(v[0].strip_top_dir && !v[1].strip_top_dir);
    let e = parse(&serde_json::json!({"opt": "x"}), "I.config.sources")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("I.config.sources.opt") && e.contains("absolute"),
        "{e}"
    );
    let e = parse(&serde_json::json!({"/opt": 5}), "I.config.sources")
        .unwrap_err()
        .to_string();
    assert!(e.contains("I.config.sources./opt"), "{e}");
}

#[tokio::test]
async fn downloads_and_unpacks_under_root() {
    let server = Server::start(vec![
        ("/app.tgz".into(), gz(&tar_bytes(APP))),
        (
            "/o/r/tarball/main".into(),
            zip_bytes(&[("o-r-1/", b""), ("o-r-1/x", b"1")]),
        ),
    ]);
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let auth = AuthConfig::default();
    let fetcher = Fetcher::new(&auth).unwrap();
    let spec = SourceSpec {
        target: "/opt/app".into(),
        url: format!("{}/app.tgz", server.url()),
        strip_top_dir: false,
    };
    apply(&spec, &root, &fetcher, "config").await.unwrap();
    assert!(d.path().join("opt/app/app/bin/run").is_file());

    let missing = SourceSpec {
        target: "/opt/m".into(),
        url: format!("{}/nope.tgz", server.url()),
        strip_top_dir: false,
    };
    let e = apply(&missing, &root, &fetcher, "config")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("config.sources./opt/m") && e.contains("404") && e.contains("nope.tgz"),
        "{e}"
    );

    // A local path works too.
    let local = d.path().join("local.tar.xz");
    fs::write(&local, xz(&tar_bytes(APP))).unwrap();
    let spec = SourceSpec {
        target: "/srv".into(),
        url: local.display().to_string(),
        strip_top_dir: false,
    };
    apply(&spec, &root, &fetcher, "config").await.unwrap();
    assert!(d.path().join("srv/app/README").is_file());
}

#[test]
fn hard_links_out_of_the_tree_are_refused_and_zip_symlinks_are_links() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    h.set_path("passwd").unwrap();
    h.as_gnu_mut().unwrap().linkname[..13].copy_from_slice(b"../../../etc/");
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    let (_d, r) = unpack_bytes(&b.into_inner().unwrap(), false);
    let e = r.unwrap_err();
    assert!(
        e.contains("hard link 'passwd'") && e.contains("outside"),
        "{e}"
    );

    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    w.add_symlink("current", "releases/1", opts).unwrap();
    w.start_file("current/x", opts).unwrap();
    w.write_all(b"through the link").unwrap();
    let bytes = w.finish().unwrap().into_inner();
    let (d, r) = unpack_bytes(&bytes, false);
    let e = r.unwrap_err();
    assert!(e.contains("'current/x'") && e.contains("symlink"), "{e}");
    assert!(fs::symlink_metadata(d.path().join("t/current")).is_err());

    // A zip symlink on its own is unpacked as a symlink, not as a file holding its target.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.add_symlink("current", "releases/1", opts).unwrap();
    let (d, r) = unpack_bytes(&w.finish().unwrap().into_inner(), false);
    r.unwrap();
    assert_eq!(
        fs::read_link(d.path().join("t/current")).unwrap(),
        PathBuf::from("releases/1")
    );
}

/// A tar of raw entries: (path, type, link target, data).
pub(crate) fn tar_entries(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, to, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_path(path).unwrap();
        if !to.is_empty() {
            h.set_link_name(to).unwrap();
        }
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn nothing_is_written_through_a_hard_link_to_the_archives_own_symlink() {
    use tar::EntryType as T;
    let outside = tempfile::tempdir().unwrap();
    let bytes = tar_entries(&[
        ("l", T::Symlink, outside.path().to_str().unwrap(), b""),
        ("h", T::Link, "l", b""),
        ("h/planted", T::Regular, "", b"pwned"),
    ]);
    let (d, r) = unpack_bytes(&bytes, false);
    assert!(
        !outside.path().join("planted").exists(),
        "written outside the target through a hard link to a symlink"
    );
    let e = r.unwrap_err();
    assert!(e.contains("'h/planted'") && e.contains("symlink"), "{e}");
    // Refused in the checking pass: nothing was written.
    assert!(fs::symlink_metadata(d.path().join("t/l")).is_err());
}

/// Whatever root the run has (`/` here: `unpack` only sees the target), entries stay beneath
/// the target: a symlink already in it leads neither an entry nor a hard link's source out.
fn old_symlink_in_the_target() {
    use tar::EntryType as T;
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), "keep").unwrap();
    for bytes in [
        tar_entries(&[("old/x", T::Regular, "", b"pwned")]),
        tar_entries(&[("h", T::Link, "old/secret", b"")]),
        tar_entries(&[("rel/x", T::Regular, "", b"pwned")]),
    ] {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("t");
        fs::create_dir_all(&target).unwrap();
        std::os::unix::fs::symlink(outside.path(), target.join("old")).unwrap();
        std::os::unix::fs::symlink("../..", target.join("rel")).unwrap();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&bytes).unwrap();
        let e = unpack(&mut f, &Dir::open(&target).unwrap(), false).unwrap_err();
        assert!(e.contains("outside"), "{e}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 1);
        assert!(!d.path().join("x").exists());
        assert_eq!(
            std::os::unix::fs::MetadataExt::nlink(
                &fs::metadata(outside.path().join("secret")).unwrap()
            ),
            1
        );
    }
}

#[test]
fn an_old_symlink_in_the_target_leads_nowhere() {
    old_symlink_in_the_target();
}

#[test]
fn the_same_with_the_fallback_walk() {
    crate::sys::fs::resolve::with_walk(|| {
        old_symlink_in_the_target();
        every_format_by_content();
        escaping_entries_are_refused();
        files_replace_old_symlinks_instead_of_following_them();
        hard_links_out_of_the_tree_are_refused_and_zip_symlinks_are_links();
    });
}

#[test]
fn over_the_limit_the_partial_file_is_removed() {
    let big = vec![b'z'; 2 << 20];
    let d = tempfile::tempdir().unwrap();
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(&tar_bytes(&[("small", b"ok"), ("big", &big)]))
        .unwrap();
    let target = d.path().join("t");
    fs::create_dir_all(&target).unwrap();
    let e = unpack_within(&mut f, &Dir::open(&target).unwrap(), false, 1 << 20).unwrap_err();
    assert!(e.contains("unpacks to more than 1048576 bytes"), "{e}");
    assert!(!target.join("big").exists(), "the partial file stayed");
}

#[test]
fn the_limit_is_the_free_space_of_the_target() {
    let d = tempfile::tempdir().unwrap();
    let st = nix::sys::statvfs::statvfs(d.path()).unwrap();
    let avail = st.blocks_available() * st.fragment_size();
    let limit = unpack_limit(&Dir::open(d.path()).unwrap());
    // The free space moves with other writers: compare within a margin.
    assert!(
        limit <= MAX_UNPACKED_BYTES && limit <= avail + (64 << 20),
        "{limit} vs {avail}"
    );
}

#[test]
fn entries_are_capped() {
    assert!(entry_cap(MAX_ENTRIES - 1).is_ok());
    assert!(entry_cap(MAX_ENTRIES).unwrap_err().contains("entries"));
}
