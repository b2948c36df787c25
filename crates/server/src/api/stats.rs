//! GetStats: the GB/T 30428 indicators of a region and period, by tier and by unit.

use proto::v1;

use super::Ctx;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};

impl Ctx {
    pub(crate) async fn stats(
        &self,
        who: &Principal,
        req: &v1::GetStatsRequest,
    ) -> ApiResult<v1::GetStatsResponse> {
        let _ = (who, req);
        Err(ApiError::Unimplemented("GetStats"))
    }
}
