//! One WebSocket connection: reads frames, talks to the hub, writes its outbound queue.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::SinkExt as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::Hub;

pub async fn run<S>(
    mut ws: WebSocketStream<S>,
    _peer: SocketAddr,
    _hub: Arc<Hub>,
    _shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = ws.close(None).await;
}
