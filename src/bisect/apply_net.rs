//! [`Target`]'s routes, rules and nft tables (`--what route,nft`): each
//! configuration makes BROKEN's list of routes and rules exactly the mix,
//! and replaces the nft tables that are not yet as the mix wants them, in
//! one transaction.
use super::apply::Target;
use super::collect::{Change, Setting, Skipped};
use super::{nft, BisectError};
use crate::state::route_set::{self, Entry};

impl Target {
    /// Routes and rules as `want` (BROKEN's journalled list mixed).
    pub(super) fn settle_routes(&self, want: Vec<Entry>) -> Result<usize, BisectError> {
        route_set::settle_in(&self.name, want)
            .map_err(|e| BisectError::Io(format!("in netns {}: {e}", self.name)))
    }

    /// Each nft table of `want` (id, text) that is not so already, in one
    /// transaction. Returns how many tables changed.
    pub(super) fn settle_nft(
        &mut self,
        want: Vec<(String, Option<String>)>,
    ) -> Result<usize, BisectError> {
        let Some(saved) = self.nft.as_mut() else {
            return Ok(0);
        };
        let change: Vec<(String, Option<String>)> = want
            .into_iter()
            .filter(|(id, t)| saved.now.get(id) != Some(t))
            .collect();
        if change.is_empty() {
            return Ok(0);
        }
        let script: String = change
            .iter()
            .map(|(id, t)| nft::replace(id, t.as_deref()))
            .collect();
        nft::load(&self.name, &script)?;
        let n = change.len();
        saved.now.extend(change);
        Ok(n)
    }

    /// Route and nft settings that cannot be applied alone (a gateway the
    /// good side reaches and BROKEN does not, a device BROKEN lacks, a
    /// table that needs a module not loaded): each good value is tried
    /// with everything else as BROKEN has it, then BROKEN's is put back.
    pub(super) fn preflight_net(
        &mut self,
        settings: Vec<Setting>,
    ) -> Result<(Vec<Setting>, Vec<Skipped>), BisectError> {
        let mut ok = Vec::new();
        let mut refused = Vec::new();
        let base = self.routes.clone().unwrap_or_default();
        for s in settings {
            let tried = match &s.change {
                Change::Route { .. } => {
                    let one = [s.clone()];
                    self.settle_routes(super::routes::mix(&base, &one, |_| false))
                        .map(|_| ())
                }
                Change::Nft { good, .. } => self
                    .settle_nft(vec![(s.name.as_str().to_string(), good.clone())])
                    .map(|_| ()),
                Change::Sysctl => Ok(()),
            };
            if let Change::Nft { bad, .. } = &s.change {
                self.settle_nft(vec![(s.name.as_str().to_string(), bad.clone())])?;
            }
            match tried {
                Ok(()) => ok.push(s),
                Err(e) => refused.push(Skipped {
                    name: s.name.clone(),
                    why: format!("its good value cannot be applied: {e}"),
                }),
            }
        }
        if self.routes.is_some() {
            self.settle_routes(base)?;
        }
        Ok((ok, refused))
    }
}
