//! The search's output folder: `search.json` (the search and the share of it this folder runs)
//! and the shares themselves ([`Shard`]).

use super::plan::Search;
use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// The `i`-th of `n` shares of a search (`--shard i/n`, `i` from 0): the brackets `b` with
/// `b mod n = i` (for grid and random search every trial is its own bracket, so trial `k`
/// belongs to shard `k mod n`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Share number, `0..count`.
    pub index: usize,
    /// Number of shares.
    pub count: usize,
}

impl Shard {
    /// Whether bracket `b` is in this share.
    pub fn has(&self, bracket: usize) -> bool {
        bracket % self.count == self.index
    }
}

impl std::str::FromStr for Shard {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Shard> {
        let bad = || anyhow!("--shard: expected I/N with 0 ≤ I < N (e.g. 0/4), got {s:?}");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// `search.json`: what the folder holds results of.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchJson {
    /// Format marker.
    pub format: String,
    /// The search.
    pub search: Search,
    /// The share this folder runs (`None`: all).
    pub shard: Option<Shard>,
}

/// Format marker of `search.json`.
pub const SEARCH_FORMAT: &str = "tinylstm-tune-search/1";

/// A value through its JSON text: what a file written from it and read back holds.
pub fn canonical<T: Serialize>(t: &T) -> Result<Value> {
    Ok(serde_json::from_str(&serde_json::to_string(t)?)?)
}

/// Reads `search.json` of an output folder.
pub fn read_search_json(dir: &Path) -> Result<SearchJson> {
    let path = dir.join("search.json");
    let bytes = std::fs::read(&path).with_context(|| {
        format!("{}: no search.json (not a `tinylstm tune` output folder?)", dir.display())
    })?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}", path.display()))
}
