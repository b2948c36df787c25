//! A resident whose request was linked to an open case as a repeat follows that case (ADR
//! 0044): the request keeps its own id, and answers the status, the responsible unit and the
//! expected time of the case it repeats, with a note naming that case.

use std::collections::HashMap;

use domain::CaseId;
use domain::record::CaseRecord;

use super::{Error, RequestOut, request_out, status_notes};
use crate::api::Ctx;

/// The cases that `cases` were linked into, by id; one read for all of them.
pub(super) async fn originals<'a>(
    ctx: &Ctx,
    cases: impl IntoIterator<Item = &'a CaseRecord>,
) -> Result<HashMap<CaseId, CaseRecord>, Error> {
    let ids: Vec<CaseId> = cases
        .into_iter()
        .filter_map(|c| c.state.merged_into)
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(ctx.store.get_cases(&ids).await.map_err(Error::from)?)
}

/// A request as its resident reads it: its own, or the case it follows.
pub(super) fn request(
    c: &CaseRecord,
    originals: &HashMap<CaseId, CaseRecord>,
    names: &HashMap<String, String>,
    base: &str,
) -> RequestOut {
    let mut out = request_out(c, names, base);
    if let Some(o) = c.state.merged_into.and_then(|id| originals.get(&id)) {
        let followed = request_out(o, names, base);
        out.status = followed.status;
        out.status_notes = format!(
            "与编号 {} 为同一事项，随其一并办理：{}",
            o.case_number,
            status_notes(o)
        );
        out.agency_responsible = followed.agency_responsible;
        out.expected_datetime = followed.expected_datetime;
    }
    out
}
