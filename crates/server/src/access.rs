//! Who may call what: one table, enforced by one layer before any handler runs.
//!
//! Every method of `griddispatch.v1` has a row: the roles that may call it and the scope rule
//! its handler applies to what the request names. [`AccessLayer`] authenticates the caller,
//! refuses a role the row does not list (PERMISSION_DENIED) and a principal the scope can
//! never admit (an installation-wide method called by an admin of one area; the feed called
//! by anyone but the platform), and hands the [`Principal`] to the handler, which keeps only
//! the check that needs the request's region or the loaded case. [`check_complete`] runs at
//! start-up: a method without a row (or a row without a method) stops the server, so an RPC
//! cannot ship open.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use prost::Message as _;
use tonic::codegen::http;

use crate::auth::{Principal, Role, Verifier};
use crate::limits::Limiter;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// What a method's handler checks against the request, once the role is admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Registry reference data (categories, units, policies, routes): any area.
    Reference,
    /// The region, grid or unit the request names lies in the caller's area; a department,
    /// which has no area, sees the cases it takes part in.
    OwnArea,
    /// The caller's own reports (or, for an admin, any in its area).
    OwnReports,
    /// Cases the unit the caller acts for holds, leads or assists in; the caller acts for
    /// its own unit, or (a dispatcher or admin) a unit in its area.
    AssignedCases,
    /// The whole installation: an admin whose token names no unit.
    Installation,
    /// The event feed, for the provincial platform only.
    PlatformFeed,
    /// A file the caller uploads: it belongs to no case or area until a report or result
    /// refers to it.
    Uploads,
}

impl Scope {
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Scope::Reference => "reference data, any area",
            Scope::OwnArea => "own area",
            Scope::OwnReports => "own reports",
            Scope::AssignedCases => "assigned cases",
            Scope::Installation => "installation-wide",
            Scope::PlatformFeed => "the platform feed only",
            Scope::Uploads => "its own uploads, no area",
        }
    }
}

/// The status a caller gets for something outside its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    PermissionDenied,
    /// The method names a case: one outside the caller's scope is answered as if it did not
    /// exist, so that probing ids tells nothing.
    NotFound,
}

impl Refusal {
    #[must_use]
    pub const fn code(self) -> tonic::Code {
        match self {
            Refusal::PermissionDenied => tonic::Code::PermissionDenied,
            Refusal::NotFound => tonic::Code::NotFound,
        }
    }
}

/// One method's row.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// `Service/Method` within `griddispatch.v1`.
    pub method: &'static str,
    pub roles: &'static [Role],
    pub scope: Scope,
    pub out_of_scope: Refusal,
}

const FIELD: &[Role] = &[
    Role::GridWorker,
    Role::UnitStaff,
    Role::Dispatcher,
    Role::Admin,
];
/// Those who file reports: the field roles and intake systems (the hotline, residents' apps).
const REPORTERS: &[Role] = &[
    Role::GridWorker,
    Role::UnitStaff,
    Role::Dispatcher,
    Role::Admin,
    Role::Intake,
];
const UNITS: &[Role] = &[Role::UnitStaff, Role::Dispatcher, Role::Admin];
const ADMIN: &[Role] = &[Role::Admin];
const PLATFORM: &[Role] = &[Role::Platform];

const fn rule(method: &'static str, roles: &'static [Role], scope: Scope) -> Rule {
    Rule {
        method,
        roles,
        scope,
        out_of_scope: Refusal::PermissionDenied,
    }
}

const fn on_case(method: &'static str, roles: &'static [Role], scope: Scope) -> Rule {
    Rule {
        method,
        roles,
        scope,
        out_of_scope: Refusal::NotFound,
    }
}

/// The access table: every method of `griddispatch.v1`.
pub const TABLE: &[Rule] = &[
    rule("ReportingService/ReportEvent", REPORTERS, Scope::OwnArea),
    rule("ReportingService/SyncReports", REPORTERS, Scope::OwnArea),
    rule(
        "ReportingService/ListCategories",
        REPORTERS,
        Scope::Reference,
    ),
    rule(
        "ReportingService/ListMyReports",
        REPORTERS,
        Scope::OwnReports,
    ),
    on_case("ReportingService/VerifyCase", FIELD, Scope::OwnArea),
    on_case("ReportingService/RateCase", REPORTERS, Scope::OwnReports),
    rule("RoutingService/UpsertUnits", ADMIN, Scope::OwnArea),
    rule("RoutingService/ListUnits", FIELD, Scope::Reference),
    rule(
        "RoutingService/UpsertCategories",
        ADMIN,
        Scope::Installation,
    ),
    rule("RoutingService/PutPolicy", ADMIN, Scope::OwnArea),
    rule("RoutingService/GetPolicy", FIELD, Scope::Reference),
    rule("RoutingService/ResolveRoute", FIELD, Scope::Reference),
    rule("RoutingService/LocatePoint", REPORTERS, Scope::Reference),
    rule("MediaService/Upload", REPORTERS, Scope::Uploads),
    on_case("MediaService/Download", FIELD, Scope::OwnArea),
    rule("EscalationService/WatchQueue", UNITS, Scope::AssignedCases),
    on_case("EscalationService/Accept", UNITS, Scope::AssignedCases),
    on_case("EscalationService/CallUp", UNITS, Scope::AssignedCases),
    on_case("EscalationService/Return", UNITS, Scope::AssignedCases),
    on_case("EscalationService/Dispatch", UNITS, Scope::AssignedCases),
    on_case("EscalationService/Merge", UNITS, Scope::AssignedCases),
    on_case("EscalationService/Split", UNITS, Scope::AssignedCases),
    on_case("HandlingService/SubmitResult", UNITS, Scope::AssignedCases),
    on_case(
        "HandlingService/RequestExtension",
        UNITS,
        Scope::AssignedCases,
    ),
    on_case(
        "HandlingService/DecideExtension",
        UNITS,
        Scope::AssignedCases,
    ),
    rule("ConsoleService/ListCases", FIELD, Scope::OwnArea),
    on_case("ConsoleService/GetCase", FIELD, Scope::OwnArea),
    rule("ConsoleService/WatchCases", FIELD, Scope::OwnArea),
    rule("ConsoleService/GetStats", FIELD, Scope::OwnArea),
    rule("ExportService/StreamEvents", PLATFORM, Scope::PlatformFeed),
    rule("DutyService/PutRoster", ADMIN, Scope::OwnArea),
    rule("DutyService/GetRoster", UNITS, Scope::OwnArea),
    rule("DutyService/WhoIsOnDuty", UNITS, Scope::OwnArea),
];

const PACKAGE: &str = "griddispatch.v1";

/// The row of a request path (`/griddispatch.v1.Service/Method`).
#[must_use]
pub fn lookup(path: &str) -> Option<&'static Rule> {
    let rest = path
        .strip_prefix('/')?
        .strip_prefix(PACKAGE)?
        .strip_prefix('.')?;
    TABLE.iter().find(|r| r.method == rest)
}

/// Every method of the contract has exactly one row, and every row a method.
pub fn check_complete() -> Result<(), String> {
    let fds = prost_types::FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET)
        .map_err(|e| format!("the contract's descriptor set does not decode: {e}"))?;
    let mut methods = Vec::new();
    for f in &fds.file {
        if f.package() != PACKAGE {
            continue;
        }
        for s in &f.service {
            for m in &s.method {
                methods.push(format!("{}/{}", s.name(), m.name()));
            }
        }
    }
    let mut problems = Vec::new();
    for m in &methods {
        match TABLE.iter().filter(|r| r.method == m).count() {
            1 => {}
            0 => problems.push(format!("{m} has no row in the access table")),
            n => problems.push(format!("{m} has {n} rows in the access table")),
        }
    }
    for r in TABLE {
        if !methods.iter().any(|m| m == r.method) {
            problems.push(format!(
                "{} is in the access table but not in the contract",
                r.method
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The table as `docs/security.md` prints it.
#[must_use]
pub fn markdown() -> String {
    let mut out = String::from("| method | roles | scope | out of scope |\n|---|---|---|---|\n");
    for r in TABLE {
        let roles: Vec<&str> = r.roles.iter().map(|r| r.as_str()).collect();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            r.method,
            roles.join(", "),
            r.scope.describe(),
            match r.out_of_scope {
                Refusal::PermissionDenied => "PERMISSION_DENIED",
                Refusal::NotFound => "NOT_FOUND",
            }
        ));
    }
    out
}

/// Whether `who` may call `rule` at all: its role is listed, and the scope can admit it.
pub fn admit(rule: &Rule, who: &Principal) -> Result<(), tonic::Status> {
    if !rule.roles.contains(&who.role) {
        return Err(tonic::Status::permission_denied(format!(
            "role {} may not call {}",
            who.role.as_str(),
            rule.method
        )));
    }
    if rule.scope == Scope::Installation && who.unit.is_some() {
        return Err(tonic::Status::permission_denied(format!(
            "{} is installation-wide: only an admin whose token names no unit may call it",
            rule.method
        )));
    }
    Ok(())
}

/// Paths outside `griddispatch.v1` that answer without a token: health checks (load
/// balancers carry no token) and reflection (it describes the public contract, nothing more).
/// The Open311 facade (`crate::open311`) is not gRPC: it checks its clients' `api_key` and
/// their rate itself.
fn public_path(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.")
        || path.starts_with(crate::open311::PREFIX)
        // the board's page and its schema: no data, its calls carry the user's token
        || path == crate::board::PREFIX
        || path
            .strip_prefix(crate::board::PREFIX)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// gridd's HTTP endpoints for staff clients (`crate::web`): each is a method of the table
/// under another name, with the same roles, scope, tokens and limits.
#[must_use]
pub fn http_rule(method: &http::Method, path: &str) -> Option<&'static Rule> {
    let name = match (method.as_str(), path) {
        ("POST", crate::web::MEDIA) => "MediaService/Upload",
        ("GET", p)
            if p.starts_with(crate::web::MEDIA)
                && p[crate::web::MEDIA.len()..].starts_with('/') =>
        {
            "MediaService/Download"
        }
        _ => return None,
    };
    TABLE.iter().find(|r| r.method == name)
}

/// A refusal the layer hands on to an HTTP endpoint, which answers it in HTTP's terms
/// (`crate::web::Caller`); a gRPC call is refused by the layer itself.
#[derive(Debug, Clone)]
pub struct Refused(pub tonic::Status);

/// The layer that authenticates every call and applies the table.
#[derive(Clone)]
pub struct AccessLayer {
    verifier: Arc<Verifier>,
    limiter: Arc<Limiter>,
    client_cert_roles: Arc<Vec<Role>>,
}

impl AccessLayer {
    #[must_use]
    /// `client_cert_roles`: roles whose calls must arrive over TLS with a verified client
    /// certificate (the listener's client CA checked it during the handshake).
    pub fn new(
        verifier: Verifier,
        limiter: Arc<Limiter>,
        client_cert_roles: Vec<Role>,
    ) -> AccessLayer {
        AccessLayer {
            verifier: Arc::new(verifier),
            limiter,
            client_cert_roles: Arc::new(client_cert_roles),
        }
    }
}

impl<S> tower_layer::Layer<S> for AccessLayer {
    type Service = Access<S>;

    fn layer(&self, inner: S) -> Access<S> {
        Access {
            inner,
            verifier: self.verifier.clone(),
            limiter: self.limiter.clone(),
            client_cert_roles: self.client_cert_roles.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Access<S> {
    inner: S,
    verifier: Arc<Verifier>,
    limiter: Arc<Limiter>,
    client_cert_roles: Arc<Vec<Role>>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Access<S> {
    /// The principal a request may proceed as, or the status that refuses it.
    fn decide<B>(&self, req: &http::Request<B>) -> Result<Option<Principal>, tonic::Status> {
        let path = req.uri().path();
        let header = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if public_path(path) {
            return Ok(None);
        }
        let Some(rule) = lookup(path).or_else(|| http_rule(req.method(), path)) else {
            return Err(tonic::Status::unimplemented(format!(
                "{path} is not a method of this service"
            )));
        };
        let who = self.verifier.verify(header)?;
        admit(rule, &who)?;
        if self.client_cert_roles.contains(&who.role) {
            let presented = req
                .extensions()
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(TlsConnectInfo::peer_certs)
                .is_some_and(|c| !c.is_empty());
            if !presented {
                return Err(tonic::Status::unauthenticated(format!(
                    "role {} must call with a client certificate (mutual TLS)",
                    who.role.as_str()
                )));
            }
        }
        // one caller over its rate is refused; every other caller has a bucket of its own
        self.limiter
            .take(&who.key(), std::time::Instant::now())
            .map_err(|wait| {
                tonic::Status::resource_exhausted(format!(
                    "this caller is over its rate of calls; retry in {} ms",
                    wait.as_millis().max(1)
                ))
            })?;
        Ok(Some(who))
    }
}

impl<S, B, R> tonic::codegen::Service<http::Request<B>> for Access<S>
where
    S: tonic::codegen::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        match self.decide(&req) {
            Ok(who) => {
                if let Some(who) = who {
                    req.extensions_mut().insert(who);
                }
                let fut = self.inner.call(req);
                Box::pin(fut)
            }
            Err(status) if http_rule(req.method(), req.uri().path()).is_some() => {
                req.extensions_mut().insert(Refused(status));
                Box::pin(self.inner.call(req))
            }
            Err(status) => {
                let grpc = crate::web::content_type_starts(req.headers(), "application/grpc");
                let code = status.code();
                let mut res = status.into_http();
                if !grpc {
                    // a plain HTTP client (a browser, a scanner) gets an HTTP status, not a
                    // 200 carrying a gRPC one
                    *res.status_mut() = crate::web::http_status(code);
                }
                Box::pin(async move { Ok(res) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_of_the_contract_has_one_row() {
        check_complete().unwrap();
    }

    #[test]
    fn paths_find_their_rows() {
        let r = lookup("/griddispatch.v1.ExportService/StreamEvents").unwrap();
        assert_eq!(r.roles, PLATFORM);
        assert!(lookup("/griddispatch.v1.ExportService/Nope").is_none());
        assert!(lookup("/other.v1.ExportService/StreamEvents").is_none());
    }

    #[test]
    fn the_documented_table_is_the_enforced_one() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/security.md"),
        )
        .unwrap();
        assert!(
            doc.contains(&markdown()),
            "docs/security.md must print the access table as `access::markdown()` renders it:\n{}",
            markdown()
        );
    }
}
