//! Reading `$VOLTTRON_HOME/external_platform_discovery.json` (VIP.md §11.1; the parsing is
//! [`crate::vip::discovery`]).
//!
//! At start: a missing file is an empty configuration (VOLTTRON's `keydiscovery` creates it
//! empty); a file that cannot be read or parsed is reported and the router runs with no file
//! links. On reload (SIGHUP, or a change): the same, except that on an error the links already
//! configured stay as they are — the caller simply does not apply the result
//! ([`crate::vip::router::Router::set_file_links`]).

use core::fmt;
use std::path::{Path, PathBuf};

use crate::vip::discovery::{Discovery, DiscoveryError, parse_discovery};

/// The file name inside `$VOLTTRON_HOME`.
pub const DISCOVERY_FILE: &str = "external_platform_discovery.json";

/// Largest discovery file read (a few hundred bytes per platform; anything bigger is a mistake).
pub const MAX_DISCOVERY_FILE_BYTES: u64 = 1 << 20;

/// Why the discovery file was not used.
#[derive(Debug)]
pub enum DiscoveryFileError {
    /// It exists but cannot be read (or is larger than [`MAX_DISCOVERY_FILE_BYTES`]).
    Read(PathBuf, std::io::Error),
    /// Its content is unusable as a whole.
    Parse(PathBuf, DiscoveryError),
}

impl fmt::Display for DiscoveryFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscoveryFileError::Read(p, e) => write!(f, "{}: {e}", p.display()),
            DiscoveryFileError::Parse(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

/// The discovery file's path in `home`.
pub fn discovery_path(home: &Path) -> PathBuf {
    home.join(DISCOVERY_FILE)
}

/// Read and parse the discovery file of `home`; a missing file is an empty configuration.
///
/// # Errors
/// [`DiscoveryFileError`]; the previous configuration (if any) should stay in force.
pub fn read_discovery(home: &Path) -> Result<Discovery, DiscoveryFileError> {
    let path = discovery_path(home);
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Discovery::default()),
        Err(e) => return Err(DiscoveryFileError::Read(path, e)),
    };
    if meta.len() > MAX_DISCOVERY_FILE_BYTES {
        let e = std::io::Error::other(format!("larger than {MAX_DISCOVERY_FILE_BYTES} bytes"));
        return Err(DiscoveryFileError::Read(path, e));
    }
    let content = std::fs::read(&path).map_err(|e| DiscoveryFileError::Read(path.clone(), e))?;
    parse_discovery(&content).map_err(|e| DiscoveryFileError::Parse(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_empty_good_and_garbage_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_discovery(dir.path()).unwrap(), Discovery::default());
        let path = discovery_path(dir.path());
        std::fs::write(&path, "").unwrap();
        assert_eq!(read_discovery(dir.path()).unwrap(), Discovery::default());
        std::fs::write(
            &path,
            r#"{"p2": {"instance-name": "p2", "vip-address": "tcp://127.0.0.1:2", "serverkey": "wSdbLxSEa3DNUtqHbM6nFX1gCh4ksbvjD98ChP8dsSQ"}}"#,
        )
        .unwrap();
        assert_eq!(read_discovery(dir.path()).unwrap().entries.len(), 1);
        std::fs::write(&path, "{\"p2\": {").unwrap();
        let err = read_discovery(dir.path()).unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()) && err.contains("not JSON"), "{err}");
        std::fs::write(&path, "[]").unwrap();
        assert!(read_discovery(dir.path()).unwrap_err().to_string().ends_with("not a JSON object of entries"));
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(matches!(read_discovery(dir.path()), Err(DiscoveryFileError::Read(..))));
    }
}
