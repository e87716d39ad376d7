//! Init `sources`: target directory -> archive URL or path, unpacked into the directory.
//!
//! The archive type is read from its first bytes, not from the URL (cfn-init does the same;
//! GitHub's tarball URLs have no extension): gzip, bzip2 and xz wrap a tar; zip is read as is.
//! GitHub tarball/zipball/archive URLs wrap everything in one `owner-repo-sha/` directory,
//! which is dropped as cfn-init drops it.
//!
//! An archive is input, so no entry may land outside the target directory: absolute paths,
//! `..`, hard links out of the tree and writes through a symlink the archive itself created
//! (or through a hard link to one, which is a second symlink) are refused with an error naming the entry, in a first pass that writes nothing, so a bad
//! archive leaves the target untouched. Device nodes and FIFOs are skipped.
//!
//! The second pass cannot escape either, whatever the target already holds (a symlink an
//! earlier archive left, a hard link to one): every entry's directory is resolved beneath a
//! handle on the target with `RESOLVE_BENEATH` (absolute symlinks and `..` out are errors),
//! and files, links and directories are made as entries of that directory handle, never
//! through a path. The target itself is resolved within the run's root (`--root`).

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Seek};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::SFlag;

use super::fetch::{Fetcher, Request};
use crate::error::{Error, Result};
use crate::input::Node;
use crate::sys::fs::resolve::Scope;
use crate::sys::fs::{Dir, Root};
use serde::Serialize;

/// Archives are spooled to a temporary file before unpacking; this bounds the disk they take.
const MAX_ARCHIVE_BYTES: u64 = 4 << 30;
/// Bounds what a small compressed archive may expand to (a "zip bomb"); lowered to the free
/// space of the target's filesystem ([`unpack_limit`]): a 14 MB tar.gz once filled a 1 GiB disk.
const MAX_UNPACKED_BYTES: u64 = 32 << 30;
/// Bounds the entries of one archive: millions of empty files exhaust inodes and time.
const MAX_ENTRIES: usize = 1_000_000;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SourceSpec {
    /// The directory the archive is unpacked into.
    pub target: String,
    pub url: String,
    /// True when the single top directory of the archive is dropped (GitHub archives).
    pub strip_top_dir: bool,
}

pub fn parse(node: &Node) -> Result<Vec<SourceSpec>> {
    let mut out = node
        .entries()?
        .into_iter()
        .map(|(target, url)| {
            if !target.starts_with('/') {
                return Err(url.error("the target directory must be an absolute path"));
            }
            let url = url
                .value()
                .as_str()
                .filter(|u| !u.trim().is_empty())
                .ok_or_else(|| {
                    url.error(format!(
                        "must be an archive URL or path, got {}",
                        url.kind()
                    ))
                })?;
            Ok(SourceSpec {
                target: target.to_string(),
                url: url.trim().to_string(),
                strip_top_dir: is_github_archive(url),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort_by(|a, b| a.target.cmp(&b.target));
    Ok(out)
}

/// github.com/<o>/<r>/tarball|zipball/<ref>, github.com/<o>/<r>/archive/<ref>.tar.gz|.zip and
/// codeload.github.com/<o>/<r>/tar.gz|zip|legacy.tar.gz|legacy.zip/<ref>.
pub fn is_github_archive(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["github.com" | "www.github.com", _, _, kind, _, ..] => {
            matches!(*kind, "tarball" | "zipball" | "archive")
        }
        ["codeload.github.com", _, _, kind, _, ..] => {
            matches!(
                *kind,
                "tar.gz" | "zip" | "legacy.tar.gz" | "legacy.zip" | "tar" | "legacy.tar"
            )
        }
        // The API form: api.github.com/repos/<o>/<r>/tarball|zipball[/<ref>]
        ["api.github.com", "repos", _, _, kind, ..] => matches!(*kind, "tarball" | "zipball"),
        _ => false,
    }
}

pub async fn apply(
    spec: &SourceSpec,
    root: &Root,
    fetcher: &Fetcher<'_>,
    config: &str,
) -> Result<()> {
    let key_path = format!("{}{config}.sources.{}", super::BLOCK_PREFIX, spec.target);
    // A target that could never be written is refused before the download.
    root.map(&spec.target)?;
    let mut archive = tempfile::tempfile().map_err(|e| Error::io("create", "temporary file", e))?;
    let bytes = fetcher
        .fetch_into(
            &Request {
                url: &spec.url,
                auth_name: None,
                key_path: &key_path,
                max_bytes: MAX_ARCHIVE_BYTES,
            },
            &mut archive,
        )
        .await?;
    let target = root.open_dir(&spec.target, Some(0o777))?;
    let n = unpack(&mut archive, &target, spec.strip_top_dir)
        .map_err(|m| Error::invalid(&key_path, format!("{}: {m}", spec.url)))?;
    tracing::info!(config, target = %spec.target, url = %spec.url, archive_bytes = bytes, entries = n, "source unpacked");
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tar,
    Gzip,
    Bzip2,
    Xz,
    Zip,
}

pub fn detect(head: &[u8]) -> Option<Format> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Format::Gzip)
    } else if head.starts_with(b"BZh") {
        Some(Format::Bzip2)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Some(Format::Xz)
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(Format::Zip)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(Format::Tar)
    } else {
        None
    }
}

/// Unpacks `archive` (any supported format) into `target`; returns the number of entries.
/// Errors are plain messages: the caller adds the key path and URL.
pub fn unpack(
    archive: &mut fs::File,
    target: &Dir,
    strip_top_dir: bool,
) -> std::result::Result<usize, String> {
    unpack_within(archive, target, strip_top_dir, unpack_limit(target))
}

/// What an archive may write into `target`: [`MAX_UNPACKED_BYTES`], or less when the target's
/// filesystem has less free space (for root, `f_bfree` would count the reserved blocks too:
/// `f_bavail` leaves them to the system).
fn unpack_limit(target: &Dir) -> u64 {
    match nix::sys::statvfs::fstatvfs(target.as_fd()) {
        Ok(st) => {
            let avail = st.blocks_available().saturating_mul(st.fragment_size());
            MAX_UNPACKED_BYTES.min(avail)
        }
        Err(_) => MAX_UNPACKED_BYTES,
    }
}

fn unpack_within(
    archive: &mut fs::File,
    target: &Dir,
    strip_top_dir: bool,
    limit: u64,
) -> std::result::Result<usize, String> {
    let mut head = [0u8; 512];
    archive.rewind().map_err(|e| e.to_string())?;
    let n = read_up_to(archive, &mut head).map_err(|e| e.to_string())?;
    archive.rewind().map_err(|e| e.to_string())?;
    let format = detect(&head[..n])
        .ok_or("not a supported archive (tar, tar.gz, tar.bz2, tar.xz or zip)")?;
    // Two passes: the first only checks every entry, so a bad entry late in the archive
    // leaves nothing half-unpacked; the second writes.
    let mut count = 0;
    for check_only in [true, false] {
        archive.rewind().map_err(|e| e.to_string())?;
        let mut out = Unpacker {
            target,
            strip_top_dir,
            links: HashSet::new(),
            written: 0,
            limit,
            check_only,
        };
        let r = std::io::BufReader::new(&mut *archive);
        count = match format {
            Format::Tar => out.tar(r),
            Format::Gzip => out.tar(flate2::read::MultiGzDecoder::new(r)),
            Format::Bzip2 => out.tar(bzip2::read::MultiBzDecoder::new(r)),
            Format::Xz => out.tar(liblzma::read::XzDecoder::new_multi_decoder(r)),
            Format::Zip => out.zip(r.into_inner()),
        }?;
    }
    Ok(count)
}

/// Refuses the entry after [`MAX_ENTRIES`] (in the check pass, so nothing is written).
fn entry_cap(count: usize) -> std::result::Result<(), String> {
    if count >= MAX_ENTRIES {
        return Err(format!("more than {MAX_ENTRIES} entries: refused"));
    }
    Ok(())
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

struct Unpacker<'a> {
    target: &'a Dir,
    strip_top_dir: bool,
    /// Symlinks this archive created, and hard links to them (relative paths): nothing is
    /// written through them.
    links: HashSet<PathBuf>,
    written: u64,
    /// Bytes this archive may write in all ([`unpack_limit`]).
    limit: u64,
    /// Validate paths and links, write nothing.
    check_only: bool,
}

enum Kind {
    Dir,
    File,
    Symlink(PathBuf),
    HardLink(PathBuf),
    Skip,
}

fn is_dir(st: &nix::sys::stat::FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

/// The directory part of `rel` ("" for an entry at the top) and its file name.
fn split(rel: &Path) -> (&Path, &std::ffi::OsStr) {
    (
        rel.parent().unwrap_or(Path::new("")),
        rel.file_name().expect("an entry path ends in a name"),
    )
}

impl Unpacker<'_> {
    /// The entry's path relative to the target, or None for the stripped top directory.
    fn relative(&self, raw: &Path, shown: &str) -> std::result::Result<Option<PathBuf>, String> {
        let mut out = PathBuf::new();
        for c in raw.components() {
            match c {
                Component::Normal(p) => out.push(p),
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => {
                    return Err(format!("entry '{shown}' has an absolute path: refused"))
                }
                Component::ParentDir => {
                    return Err(format!(
                        "entry '{shown}' would be written outside the target directory: refused"
                    ))
                }
            }
        }
        if self.strip_top_dir {
            let mut parts = out.components();
            parts.next();
            out = parts.as_path().to_path_buf();
        }
        if out.as_os_str().is_empty() {
            return Ok(None);
        }
        for ancestor in out.ancestors().skip(1) {
            if self.links.contains(ancestor) {
                return Err(format!(
                    "entry '{shown}' would be written through the symlink '{}' from the same archive: refused",
                    ancestor.display()
                ));
            }
        }
        Ok(Some(out))
    }

    fn put(
        &mut self,
        rel: &Path,
        shown: &str,
        kind: Kind,
        mode: Option<u32>,
        data: &mut dyn Read,
    ) -> std::result::Result<(), String> {
        if self.check_only {
            match kind {
                Kind::Symlink(_) => {
                    self.links.insert(rel.to_path_buf());
                }
                Kind::HardLink(to) => {
                    let src = self
                        .relative(&to, &to.display().to_string())
                        .map_err(|m| format!("hard link '{shown}': {m}"))?;
                    // A hard link to a symlink is a second symlink (link(2) does not follow
                    // it): nothing may be written through it either.
                    if src.is_some_and(|s| self.links.contains(&s)) {
                        self.links.insert(rel.to_path_buf());
                    }
                }
                _ => {}
            }
            return Ok(());
        }
        let dst = self.target.shown(rel);
        let io =
            |op: &str, e: std::io::Error| format!("entry '{shown}': {op} {}: {e}", dst.display());
        if let Kind::Skip = kind {
            return Ok(());
        }
        let (parent, name) = split(rel);
        let dir = self
            .target
            .create_dirs(parent, Scope::Beneath, 0o777)
            .map_err(|e| {
                let at = self.target.shown(parent);
                format!("entry '{shown}': create directory {}: {e}", at.display())
            })?;
        let existing = dir.stat(name).map_err(|e| io("stat", e))?;
        if let Kind::Dir = kind {
            // A symlink (or file) in the way is replaced, never followed.
            if existing.as_ref().is_some_and(|m| !is_dir(m)) {
                dir.unlink(name).map_err(|e| io("replace", e))?;
            }
            let made = dir
                .create_dirs(Path::new(name), Scope::Beneath, 0o777)
                .map_err(|e| io("create directory", e))?;
            if let Some(m) = mode {
                made.set_mode(m & 0o777).map_err(|e| io("chmod", e))?;
            }
            return Ok(());
        }
        // Replace, never write through: an old symlink at this path must not redirect the write.
        if let Some(m) = &existing {
            if is_dir(m) {
                return Err(format!(
                    "entry '{shown}' is a file but {} is a directory",
                    dst.display()
                ));
            }
            dir.unlink(name).map_err(|e| io("replace", e))?;
        }
        match kind {
            Kind::Symlink(to) => {
                dir.symlink(&to, name)
                    .map_err(|e| io("create symlink", e))?;
                self.links.insert(rel.to_path_buf());
            }
            Kind::HardLink(to) => {
                let src = self
                    .relative(&to, &to.display().to_string())
                    .map_err(|m| format!("hard link '{shown}': {m}"))?
                    .ok_or_else(|| format!("hard link '{shown}' points at the top directory"))?;
                // The source's directory is resolved beneath the target too: a symlink an
                // earlier archive left cannot make this a hard link to a file of the host.
                let (src_parent, src_name) = split(&src);
                let src_dir = self
                    .target
                    .open_dir(src_parent, Scope::Beneath)
                    .map_err(|e| {
                        format!("entry '{shown}': hard link to '{}': {e}", to.display())
                    })?;
                dir.hard_link(&src_dir, src_name, name)
                    .map_err(|e| io("hard link", e))?;
                if self.links.contains(&src) {
                    self.links.insert(rel.to_path_buf());
                }
            }
            Kind::File => {
                let mut f = dir.create_new(name, 0o600).map_err(|e| io("create", e))?;
                let budget = self.limit.saturating_sub(self.written);
                let copied = std::io::copy(&mut data.take(budget + 1), &mut f);
                // A partial file is removed: it would fill the disk and look unpacked.
                let partial = |dir: &Dir| {
                    let _ = dir.unlink(name);
                };
                let n = copied.map_err(|e| {
                    partial(&dir);
                    io("write", e)
                })?;
                if n > budget {
                    partial(&dir);
                    return Err(format!(
                        "unpacks to more than {} bytes (the free space of the target's filesystem, at most {MAX_UNPACKED_BYTES}): refused",
                        self.limit
                    ));
                }
                self.written += n;
                // Permission bits only: set-id bits from an archive are not trusted.
                f.set_permissions(fs::Permissions::from_mode(mode.unwrap_or(0o644) & 0o777))
                    .map_err(|e| io("chmod", e))?;
            }
            Kind::Dir | Kind::Skip => unreachable!("handled above"),
        }
        Ok(())
    }

    fn tar(&mut self, r: impl Read) -> std::result::Result<usize, String> {
        use tar::EntryType as T;
        let mut archive = tar::Archive::new(r);
        let mut count = 0;
        for entry in archive
            .entries()
            .map_err(|e| format!("not a tar archive: {e}"))?
        {
            let mut entry = entry.map_err(|e| format!("broken tar archive: {e}"))?;
            let raw = entry
                .path()
                .map_err(|e| format!("bad entry name: {e}"))?
                .into_owned();
            let shown = raw.display().to_string();
            let link = || -> std::result::Result<PathBuf, String> {
                entry
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|p| p.into_owned())
                    .ok_or_else(|| format!("link entry '{shown}' has no target"))
            };
            let kind = match entry.header().entry_type() {
                T::Regular | T::Continuous | T::GNUSparse => Kind::File,
                T::Directory => Kind::Dir,
                T::Symlink => Kind::Symlink(link()?),
                T::Link => Kind::HardLink(link()?),
                // Metadata records (pax, GNU long names) are consumed by the iterator.
                T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => continue,
                other => {
                    tracing::warn!(entry = %shown, kind = ?other, "skipping special file in archive");
                    Kind::Skip
                }
            };
            let Some(rel) = self.relative(&raw, &shown)? else {
                continue;
            };
            let mode = entry.header().mode().ok();
            entry_cap(count)?;
            self.put(&rel, &shown, kind, mode, &mut entry)?;
            count += 1;
        }
        if count == 0 {
            return Err("the archive has no entries".into());
        }
        Ok(count)
    }

    fn zip(&mut self, f: &mut fs::File) -> std::result::Result<usize, String> {
        let mut archive = zip::ZipArchive::new(f).map_err(|e| format!("not a zip archive: {e}"))?;
        let mut count = 0;
        for i in 0..archive.len() {
            let mut file = archive
                .by_index(i)
                .map_err(|e| format!("broken zip archive: {e}"))?;
            let shown = file
                .name()
                .map_err(|e| format!("bad entry name: {e}"))?
                .into_owned();
            let raw = PathBuf::from(&shown);
            let mode = file.unix_mode();
            let kind = if file.is_dir() {
                Kind::Dir
            } else if file.is_symlink() {
                let mut to = String::new();
                file.read_to_string(&mut to)
                    .map_err(|e| format!("entry '{shown}': {e}"))?;
                Kind::Symlink(PathBuf::from(to))
            } else {
                Kind::File
            };
            let Some(rel) = self.relative(&raw, &shown)? else {
                continue;
            };
            entry_cap(count)?;
            self.put(&rel, &shown, kind, mode, &mut file)?;
            count += 1;
        }
        if count == 0 {
            return Err("the archive has no entries".into());
        }
        Ok(count)
    }
}

#[cfg(test)]
pub(crate) mod tests;
