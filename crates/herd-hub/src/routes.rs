//! The smart-HTTP routes (protocol v0/v1, stateless-rpc) and their input checks.
//!
//! ```text
//! GET  /<name>/info/refs?service=git-upload-pack|git-receive-pack
//! POST /<name>/git-upload-pack     application/x-git-upload-pack-request
//! POST /<name>/git-receive-pack    application/x-git-receive-pack-request
//! ```
//! Pushes (the receive-pack advertisement and RPC) pass [`crate::auth::Access`] first: with
//! tokens, 401/403 before anything is read. Bodies may be gzip-encoded. Limits: `RequestBodyLimitLayer` on wire bytes (413 on a large
//! Content-Length), the same limit on inflated bytes (a gzip bomb is a 413 too), and a body
//! timeout (408). Every refusal is a 4xx with a one-line reason and leaves the repository as
//! it was.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;

use crate::advertise;
use crate::error::RequestError;
use crate::hub::{Inner, PushContext};
use crate::mode::LANDED_HEADER;
use crate::stats::Route;
use crate::upload_pack;

/// Header naming the slot a push writes in.
pub const SLOT_HEADER: &str = "x-herd-slot";

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    let limit = inner.config.body_limit;
    let slots = (
        inner.clone(),
        Arc::new(tokio::sync::Semaphore::new(
            inner.config.max_in_flight.max(1),
        )),
    );
    Router::new()
        .route("/{repo}/info/refs", get(info_refs))
        .route("/{repo}/git-upload-pack", post(upload_pack_rpc))
        .route("/{repo}/git-receive-pack", post(receive_pack_rpc))
        .with_state(inner)
        .layer(RequestDecompressionLayer::new())
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(middleware::from_fn_with_state(slots, in_flight))
}

/// At most `max_in_flight` requests in the handlers at once, across all routes; one more gets
/// a 503 at once. (tower's `ConcurrencyLimit` would queue it, and axum applies layers per
/// route, so one shared semaphore is the whole of it.)
async fn in_flight(
    State((inner, slots)): State<(Arc<Inner>, Arc<tokio::sync::Semaphore>)>,
    mut request: Request,
    next: middleware::Next,
) -> Response {
    match slots.try_acquire_owned() {
        Ok(permit) => {
            // A push lands in its own task, which outlives a client that hangs up: it takes a
            // share of the permit, so the slot is free only when the push is done too.
            request.extensions_mut().insert(InFlight(Arc::new(permit)));
            next.run(request).await
        }
        Err(_) => {
            inner.stats.overloaded();
            busy(format!(
                "the hub is serving {} requests; try again",
                inner.config.max_in_flight
            ))
        }
    }
}

/// One of the `max_in_flight` slots, shared by a request and the push task it starts.
#[derive(Clone, Debug)]
pub(crate) struct InFlight(#[allow(dead_code)] Arc<tokio::sync::OwnedSemaphorePermit>);

/// The live epoch of the claim a push names in [`crate::fence::CLAIM_HEADER`], read now
/// (when the hub fences and the header parses; otherwise fencing reads it on the store thread).
async fn claim_hint(inner: &Inner, header: Option<&str>) -> Option<crate::fence::ClaimHint> {
    let (true, Some(bus)) = (inner.config.fence_claims, inner.config.bus.as_ref()) else {
        return None;
    };
    let (task, _) = crate::fence::parse_claim(header?)?;
    let read_at = std::time::Instant::now();
    let live = bus.claim(&task).await.ok()?.map(|(_, epoch)| epoch);
    Some(crate::fence::ClaimHint {
        task,
        live,
        read_at,
    })
}

/// `503` with `Retry-After: 1`.
fn busy(reason: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::RETRY_AFTER, "1"),
        ],
        format!("{reason}\n"),
    )
        .into_response()
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.reason),
        )
            .into_response()
    }
}

fn refused(inner: &Inner, err: RequestError) -> Response {
    if err.status < 500 {
        inner.stats.bad_request();
    }
    err.into_response()
}

/// A push without a valid token: 401 with a Basic challenge (so the git CLI asks for
/// credentials) or 403.
fn deny(inner: &Inner, denied: crate::auth::Denied) -> Response {
    inner.stats.push_denied();
    let mut response = RequestError {
        status: denied.status(),
        reason: denied.to_string(),
    }
    .into_response();
    if denied.status() == 401 {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"herd hub\""),
        );
    }
    response
}

fn check_repo(inner: &Inner, repo: &str) -> Result<(), RequestError> {
    if repo == inner.config.name {
        Ok(())
    } else {
        Err(RequestError {
            status: 404,
            reason: format!(
                "no repository {repo:?} (this hub serves {:?})",
                inner.config.name
            ),
        })
    }
}

async fn info_refs(
    State(inner): State<Arc<Inner>>,
    UrlPath(repo): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let service = q.get("service").cloned().unwrap_or_default();
    inner.stats.request(match service.as_str() {
        "git-upload-pack" => Route::UploadAdvert,
        "git-receive-pack" => Route::ReceiveAdvert,
        _ => Route::Other,
    });
    if let Err(e) = check_repo(&inner, &repo) {
        return refused(&inner, e);
    }
    if service == "git-receive-pack"
        && let Err(denied) = inner.config.access.push_slot(
            header_str(&headers, header::AUTHORIZATION.as_str()),
            header_str(&headers, SLOT_HEADER),
        )
    {
        return deny(&inner, denied);
    }
    let refs = match service.as_str() {
        "git-receive-pack" => advertise::receive_pack(inner.tip()),
        "git-upload-pack" => upload_pack::advertise(inner.tip()),
        "" => {
            return refused(
                &inner,
                RequestError::bad(
                    "dumb HTTP is not supported: ask for ?service=git-upload-pack or git-receive-pack",
                ),
            );
        }
        other => {
            return refused(
                &inner,
                RequestError::bad(format!("unknown service {other:?}")),
            );
        }
    };
    let body = [advertise::service_header(&service), refs].concat();
    inner.stats.bytes(0, body.len() as u64);
    respond(&format!("application/x-{service}-advertisement"), body)
}

async fn upload_pack_rpc(
    State(inner): State<Arc<Inner>>,
    UrlPath(repo): UrlPath<String>,
    request: Request,
) -> Response {
    inner.stats.request(Route::Fetch);
    let span = tracing::info_span!("hub.upload_pack", traceparent = tracing::field::Empty);
    if let Some(tp) = header_str(request.headers(), "traceparent") {
        span.record("traceparent", tp);
        herd_bus::trace::set_parent(&span, tp);
    }
    // Instrument, never `enter()` across an await: the task may resume on another thread.
    let serve = async move {
        let content_type = "application/x-git-upload-pack-request";
        let body = match rpc_body(&inner, &repo, request, content_type).await {
            Ok(b) => b,
            Err(e) => return refused(&inner, e),
        };
        let (me, request) = (inner.clone(), body.clone());
        let work = tokio::task::spawn_blocking(move || {
            let position = |oid| me.trunk_position(oid);
            me.reads
                .with(|r| upload_pack::serve(r, &request, &position))
                .map_err(|e| RequestError::internal(e.message().to_string()))?
        });
        let limit = inner.config.upload_time_limit;
        let served = match tokio::time::timeout(limit, work).await {
            Ok(done) => done
                .unwrap_or_else(|e| Err(RequestError::internal(format!("fetch task failed: {e}")))),
            Err(_) => {
                inner.stats.overloaded();
                Err(RequestError::busy(format!(
                    "the fetch took longer than {limit:?}; try again"
                )))
            }
        };
        match served {
            Ok(out) => {
                inner.stats.bytes(body.len() as u64, out.len() as u64);
                respond("application/x-git-upload-pack-result", out)
            }
            Err(e) => refused(&inner, e),
        }
    };
    tracing::Instrument::instrument(serve, span).await
}

async fn receive_pack_rpc(
    State(inner): State<Arc<Inner>>,
    UrlPath(repo): UrlPath<String>,
    request: Request,
) -> Response {
    inner.stats.request(Route::Push);
    let header_slot = header_str(request.headers(), SLOT_HEADER).map(str::to_string);
    let slot = match inner.config.access.push_slot(
        header_str(request.headers(), header::AUTHORIZATION.as_str()),
        header_slot.as_deref(),
    ) {
        Ok(slot) => slot,
        Err(denied) => return deny(&inner, denied),
    };
    let traceparent = header_str(request.headers(), "traceparent").map(str::to_string);
    let claim_header =
        header_str(request.headers(), crate::fence::CLAIM_HEADER).map(str::to_string);
    let in_flight = request.extensions().get::<InFlight>().cloned();
    let span = tracing::info_span!(
        "hub.receive_pack",
        push.accepted = tracing::field::Empty,
        push.reject_reason = tracing::field::Empty,
        slot = tracing::field::Empty,
        traceparent = tracing::field::Empty,
    );
    if let Some(s) = &slot {
        span.record("slot", s.as_str());
    }
    if let Some(tp) = &traceparent {
        span.record("traceparent", tp.as_str());
        herd_bus::trace::set_parent(&span, tp);
    }
    let result = async {
        if let Some(s) = &slot
            && (s.is_empty()
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                || s.starts_with('.'))
        {
            return Err(RequestError::bad(format!(
                "invalid {SLOT_HEADER} {s:?}: one directory name of [A-Za-z0-9._-]"
            )));
        }
        let body = rpc_body(
            &inner,
            &repo,
            request,
            "application/x-git-receive-pack-request",
        )
        .await?;
        let len = body.len() as u64;
        let claim = claim_hint(&inner, claim_header.as_deref()).await;
        let ctx = PushContext {
            slot,
            traceparent,
            claim,
            in_flight,
        };
        let (report, outcome) = inner.push(body, ctx).await?;
        inner.stats.bytes(len, report.len() as u64);
        Ok::<_, RequestError>((report, outcome))
    };
    let result = tracing::Instrument::instrument(result, span.clone()).await;
    match result {
        Ok((report, outcome)) => {
            span.record("push.accepted", outcome.refusal().is_none());
            if let Some(refusal) = outcome.refusal() {
                span.record("push.reject_reason", refusal.name());
            }
            let mut response = respond("application/x-git-receive-pack-result", report);
            if let Some(last) = outcome.landed().last()
                && let Ok(value) = header::HeaderValue::from_str(&last.landed.to_string())
            {
                response.headers_mut().insert(LANDED_HEADER, value);
            }
            response
        }
        Err(e) => {
            span.record("push.accepted", false);
            span.record("push.reject_reason", e.reason.as_str());
            refused(&inner, e)
        }
    }
}

/// Checks the repository name and content type, then reads the (inflated) body within the
/// size and time limits.
async fn rpc_body(
    inner: &Inner,
    repo: &str,
    request: Request,
    content_type: &str,
) -> Result<bytes::Bytes, RequestError> {
    check_repo(inner, repo)?;
    let got = header_str(request.headers(), header::CONTENT_TYPE.as_str()).unwrap_or("");
    if got != content_type {
        return Err(RequestError {
            status: 415,
            reason: format!("expected content-type {content_type}, got {got:?}"),
        });
    }
    let limit = inner.config.body_limit;
    let read = axum::body::to_bytes(request.into_body(), limit);
    match tokio::time::timeout(inner.config.body_timeout, read).await {
        Err(_) => Err(RequestError {
            status: 408,
            reason: format!(
                "request body not received within {:?}",
                inner.config.body_timeout
            ),
        }),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            let text = format!("{e}");
            let over = std::error::Error::source(&e)
                .is_some_and(|s| s.to_string().contains("length limit"))
                || text.contains("length limit");
            if over {
                Err(RequestError {
                    status: 413,
                    reason: format!("request body over the {limit}-byte limit"),
                })
            } else {
                Err(RequestError::bad(format!(
                    "cannot read request body: {text}"
                )))
            }
        }
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn respond(content_type: &str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from(body),
    )
        .into_response()
}
