use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Maps the absolute paths an instance would write (`/etc/ecs/ecs.config`) to where this run
/// writes them. Image builds and tests pass `--root DIR`; on an instance it is `/`.
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
