//! `store = "CurrentUser/My"`: how a `cert-store` slot names a Windows certificate store.
//! Parsed on every system (so that the error is the same everywhere), used on Windows.

/// Which registry location a system store lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    CurrentUser,
    LocalMachine,
}

/// How a `cert-store` slot names a Windows store: `CurrentUser/My`, `LocalMachine/My`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowsStoreConfig {
    pub location: Location,
    pub name: String,
    pub writable: bool,
}

impl WindowsStoreConfig {
    /// Parses `CurrentUser/NAME` or `LocalMachine/NAME` (case-insensitive location).
    pub fn parse(s: &str, writable: bool) -> std::result::Result<WindowsStoreConfig, String> {
        let bad =
            || format!("{s:?}: CurrentUser/NAME or LocalMachine/NAME, e.g. \"CurrentUser/My\"");
        let (loc, name) = s.split_once(['/', '\\']).ok_or_else(bad)?;
        let location = match loc.to_ascii_lowercase().as_str() {
            "currentuser" => Location::CurrentUser,
            "localmachine" => Location::LocalMachine,
            _ => return Err(bad()),
        };
        if name.is_empty() || name.contains(['/', '\\']) {
            return Err(bad());
        }
        Ok(WindowsStoreConfig {
            location,
            name: name.to_owned(),
            writable,
        })
    }

    pub fn machine(&self) -> bool {
        self.location == Location::LocalMachine
    }

    pub fn display(&self) -> String {
        let loc = match self.location {
            Location::CurrentUser => "CurrentUser",
            Location::LocalMachine => "LocalMachine",
        };
        format!("{loc}/{}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names_parse() {
        let s = WindowsStoreConfig::parse("CurrentUser/My", true).unwrap();
        assert_eq!((s.location, s.name.as_str()), (Location::CurrentUser, "My"));
        let s = WindowsStoreConfig::parse("localmachine\\WebHosting", false).unwrap();
        assert_eq!(s.location, Location::LocalMachine);
        for bad in ["My", "Elsewhere/My", "CurrentUser/", "CurrentUser/a/b"] {
            assert!(
                WindowsStoreConfig::parse(bad, true)
                    .unwrap_err()
                    .contains("CurrentUser/My")
            );
        }
    }
}
