use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::OFlag;

use super::dir::Dir;
use super::resolve::Scope;
use crate::error::{Error, Result};

/// Maps the absolute paths an instance would write (`/etc/ecs/ecs.config`) to where this run
/// writes them. Image builds and tests pass `--root DIR`; on an instance it is `/`.
///
/// Writes go through [`Root::open_dir`]/[`Root::parent`]: the path is resolved beneath a
/// handle on the root with `RESOLVE_IN_ROOT` semantics, as if the run were chrooted into it.
/// A symlink in the tree (`/opt/app -> /srv/app`, an image's `/var/run -> /run`) is followed,
/// but within the root: under `--root DIR` it cannot lead out of DIR. With the root `/` this is
/// ordinary path resolution, so the same code runs on an instance and in an image build.
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
}

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Root { dir: dir.into() }
    }

    pub fn system() -> Self {
        Root::new("/")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `path` must be absolute and must not climb out with `..`: a metadata document is input,
    /// and `files: {"/../../x": ...}` under `--root` must not escape the root.
    pub fn map(&self, path: &str) -> Result<PathBuf> {
        let p = Path::new(path);
        if !p.is_absolute() {
            return Err(Error::invalid(path, "file path must be absolute"));
        }
        let mut out = self.dir.clone();
        for c in p.components() {
            match c {
                Component::RootDir => {}
                Component::Normal(part) => out.push(part),
                Component::CurDir => {}
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(Error::invalid(path, "file path must not contain '..'"))
                }
            }
        }
        Ok(out)
    }

    /// `path` (checked as by [`Root::map`]) relative to the root.
    fn relative(&self, path: &str) -> Result<PathBuf> {
        let mapped = self.map(path)?;
        Ok(mapped
            .strip_prefix(&self.dir)
            .expect("a mapped path is under the root")
            .to_path_buf())
    }

    /// A handle on the root directory itself.
    pub fn open(&self) -> Result<Dir> {
        Dir::open(&self.dir).map_err(|e| Error::io("open directory", &self.dir, e))
    }

    /// The directory `path`, resolved within the root; created (`mkdir -p`, the last one with
    /// `mode`) when `create` says so.
    pub fn open_dir(&self, path: &str, create: Option<u32>) -> Result<Dir> {
        self.open_rel(&self.relative(path)?, create)
    }

    /// The directory that holds `path` (created when `create`) and the name of `path` in it.
    pub fn parent(&self, path: &str, create: bool) -> Result<(Dir, OsString)> {
        let rel = self.relative(path)?;
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Err(Error::invalid(path, "names the root directory, not a file"));
        };
        let dir = self.open_rel(parent, create.then_some(0o777))?;
        Ok((dir, name.to_os_string()))
    }

    /// Reads the file at `path`, resolved within the root.
    pub fn read_to_string(&self, path: &str) -> std::io::Result<String> {
        let rel = self.relative(path).map_err(invalid_input)?;
        let f = Dir::open(&self.dir)?.open_file(&rel, Scope::InRoot, OFlag::O_RDONLY, 0)?;
        std::io::read_to_string(f)
    }

    /// Removes the file at `path`; a symlink there is removed, not followed.
    pub fn remove(&self, path: &str) -> std::io::Result<()> {
        let rel = self.relative(path).map_err(invalid_input)?;
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Err(invalid_input("the root directory is not a file"));
        };
        Dir::open(&self.dir)?
            .open_dir(parent, Scope::InRoot)?
            .unlink(name)
    }

    fn open_rel(&self, rel: &Path, create: Option<u32>) -> Result<Dir> {
        let root = self.open()?;
        match create {
            Some(mode) => root
                .create_dirs(rel, Scope::InRoot, mode)
                .map_err(|e| Error::io("create directory", self.dir.join(rel), e)),
            None => root
                .open_dir(rel, Scope::InRoot)
                .map_err(|e| Error::io("open directory", self.dir.join(rel), e)),
        }
    }
}

fn invalid_input(e: impl ToString) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_under_root_and_refuses_escapes() {
        let r = Root::new("/tmp/r");
        assert_eq!(
            r.map("/etc/ecs/ecs.config").unwrap(),
            PathBuf::from("/tmp/r/etc/ecs/ecs.config")
        );
        assert!(r.map("etc/x").is_err());
        let e = r.map("/etc/../../x").unwrap_err().to_string();
        assert!(e.contains("/etc/../../x"), "{e}");
        assert_eq!(Root::system().map("/a/b").unwrap(), PathBuf::from("/a/b"));
    }
}
