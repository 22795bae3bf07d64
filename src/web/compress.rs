//! Response compression, paid for only by the requests that ask for it.
//!
//! tower-http's compression layer negotiates on every request and wraps every response body in
//! its encoder state, even when the client sent no `Accept-Encoding` and the body goes out as
//! it is. A load generator (wrk, `doorbuster loadgen`) sends none, and for a cached page that
//! wrapping was a tenth of the work. So [`CompressWhenAcceptedLayer`] hands requests without
//! `Accept-Encoding` straight to the inner service; browsers, which always send it, get gzip or
//! brotli as before.

use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::response::Response;
use futures_util::future::{Either, MapOk, TryFutureExt as _};
use tower::{Layer, Service};
use tower_http::compression::{
    Compression, CompressionBody, CompressionLayer, DefaultPredicate, ResponseFuture,
};

/// Wraps services in [`CompressWhenAccepted`].
#[derive(Clone, Debug, Default)]
pub struct CompressWhenAcceptedLayer;

impl<S> Layer<S> for CompressWhenAcceptedLayer {
    type Service = CompressWhenAccepted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CompressWhenAccepted {
            compression: CompressionLayer::new().layer(inner),
        }
    }
}

/// tower-http's [`Compression`] for requests with `Accept-Encoding`; the bare inner service for
/// the others.
#[derive(Clone)]
pub struct CompressWhenAccepted<S> {
    compression: Compression<S>,
}

impl<S> std::fmt::Debug for CompressWhenAccepted<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompressWhenAccepted")
    }
}

type Compressed = Response<CompressionBody<Body>>;

impl<S> Service<Request> for CompressWhenAccepted<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<
        S::Future,
        MapOk<ResponseFuture<S::Future, DefaultPredicate>, fn(Compressed) -> Response>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.compression.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.headers().contains_key(header::ACCEPT_ENCODING) {
            let into_body: fn(Compressed) -> Response = |response| response.map(Body::new);
            Either::Right(self.compression.call(request).map_ok(into_body))
        } else {
            Either::Left(self.compression.get_mut().call(request))
        }
    }
}
