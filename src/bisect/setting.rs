//! A bisectable setting of any kind (sysctl, route, rule, nft table): its
//! name, its broken and good values as reported, and what applying each
//! side writes.
use serde::Serialize;

/// What a setting is, by kind: the key of its JSON object names the kind
/// (`{"sysctl": KEY}`, `{"route": KEY}`, `{"rule": RULE}`,
/// `{"nft_table": "FAMILY NAME"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Name {
    Sysctl(String),
    /// A route's identity in its table (`Entry::key`).
    Route(String),
    /// A policy rule, all of it (rules have no other identity).
    Rule(String),
    NftTable(String),
}

impl Name {
    pub fn as_str(&self) -> &str {
        match self {
            Name::Sysctl(s) | Name::Route(s) | Name::Rule(s) | Name::NftTable(s) => s,
        }
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Name::Sysctl(s) => write!(f, "{s}"),
            Name::Route(s) => write!(f, "route {s}"),
            Name::Rule(s) => write!(f, "rule {s}"),
            Name::NftTable(s) => write!(f, "nft table {s}"),
        }
    }
}

/// What applying each side of a route or nft setting writes (sysctls
/// carry theirs in `bad`/`good`). `None`: absent on that side.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Change {
    #[default]
    Sysctl,
    Route {
        bad: Option<crate::state::route_set::Entry>,
        good: Option<crate::state::route_set::Entry>,
    },
    /// Stateless `nft list table` text of each side.
    Nft {
        bad: Option<String>,
        good: Option<String>,
    },
}

/// A setting that differs and can be bisected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    #[serde(flatten)]
    pub name: Name,
    pub bad: String,
    pub good: String,
    /// Host-global: only changed with --allow-host-changes, briefly.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub host: bool,
    /// Per-device copies that moved with this key (same broken and good
    /// values as `conf.all.LEAF`, or ip_forward for `forwarding`): set
    /// together, so a cascade the kernel does on its own (ip_forward=0
    /// clears every device's forwarding) counts as the one setting it is.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub with: Vec<String>,
    #[serde(skip)]
    pub change: Change,
}

impl Setting {
    pub fn sysctl(key: &str, bad: &str, good: &str, host: bool) -> Setting {
        Setting {
            name: Name::Sysctl(key.to_string()),
            bad: bad.to_string(),
            good: good.to_string(),
            host,
            with: Vec::new(),
            change: Change::Sysctl,
        }
    }

    /// (key, bad, good) of this setting and its followers; empty for a
    /// route or nft setting.
    pub fn keys(&self) -> Vec<(&str, &str, &str)> {
        let Name::Sysctl(key) = &self.name else {
            return Vec::new();
        };
        let mut v = vec![(key.as_str(), self.bad.as_str(), self.good.as_str())];
        v.extend(
            self.with
                .iter()
                .map(|k| (k.as_str(), self.bad.as_str(), self.good.as_str())),
        );
        v
    }
}

/// A difference that is left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    #[serde(flatten)]
    pub name: Name,
    pub why: String,
}
