//! The first search by label in a slot never listed, answered from a lookup of that key
//! (`Backend::lookup`) while the whole listing follows in the background.

use super::{ObjectCache, SlotState, lock_err};
use crate::error::Result;
use crate::lock_order;
use cryptoki_sys::*;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl ObjectCache {
    /// A search by label in a slot never listed: answered from a lookup of that key alone
    /// (`Backend::lookup`: one GET of the key and one of its certificate) instead of the
    /// whole listing, which the refresher then makes in the background. `None`: search
    /// after the listing (a search without a label, a store without lookups, a key of
    /// another name, a template its objects do not match).
    pub(super) fn find_before_listing(
        &self,
        slot: usize,
        template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
        logged_in: bool,
    ) -> Result<Option<Vec<CK_OBJECT_HANDLE>>> {
        let Some(label) = template
            .iter()
            .find(|(t, _)| *t == CKA_LABEL)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
        else {
            return Ok(None);
        };
        let so = self.slot(slot)?;
        let matching = |state: &SlotState| -> Vec<CK_OBJECT_HANDLE> {
            state
                .objects
                .values()
                .filter(|o| logged_in || !o.is_private())
                .filter(|o| o.matches(template))
                .map(|o| o.handle)
                .collect()
        };
        let epoch = {
            let state = so.state.read().map_err(lock_err)?;
            if state.loaded_at.is_some() || !so.background.load(Ordering::Acquire) {
                return Ok(None);
            }
            if state.looked_up.contains(label) {
                let found = matching(&state);
                so.counters.hits.fetch_add(1, Ordering::Relaxed);
                return Ok((!found.is_empty()).then_some(found));
            }
            state.epoch
        };
        lock_order::assert_none_held("a store lookup");
        so.counters.misses.fetch_add(1, Ordering::Relaxed);
        let listing = match so.backend.lookup(label) {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::debug!(slot, error = %e, "lookup failed; searching after the listing");
                return Ok(None);
            }
        };
        let built = self.build(slot, so, &listing)?;
        let mut state = so.state.write().map_err(lock_err)?;
        if state.loaded_at.is_some() || state.epoch != epoch {
            // The listing landed meanwhile (search it), or a logout gave private objects
            // new handles: the objects built here carry the old ones.
            return Ok(None);
        }
        state.objects.extend(built);
        state.looked_up.insert(label.to_owned());
        state.looked_up_at.get_or_insert_with(Instant::now);
        state.generation += 1;
        state.queries.clear();
        let found = matching(&state);
        Ok((!found.is_empty()).then_some(found))
    }
}
