//! The wire format of `docs/protocol.md`: client frames parsed and validated into
//! [`ClientMessage`], server frames built once as shared text, and the error kinds mapped to
//! the `errorType` strings clients branch on.

use std::borrow::Cow;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::relay::{Fields, FieldsError, MAX_FIELDS};
use crate::config::Secret;

/// The version announced in `joined`.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest room id, in characters after trimming.
pub const MAX_ROOM_CHARS: usize = 128;
/// Longest user name, in characters after trimming.
pub const MAX_USERNAME_CHARS: usize = 64;
/// Longest resume session id or token we look at; anything longer cannot match.
const MAX_RESUME_CHARS: usize = 128;
/// Longest room password, in characters.
pub const MAX_PASSWORD_CHARS: usize = 128;
/// Longest frame that is not an offer, answer or candidate (a login with the longest names,
/// every character escaped, fits). Longer ones are refused before a JSON tree is built, and
/// before joining a room they are not parsed at all (only relayed messages may be longer).
pub const MAX_CONTROL_BYTES: usize = 4096;

/// Everything the server answers with an `error` message, or closes a connection for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    #[error("the message is not valid JSON")]
    NotJson,
    #[error("the message is not a JSON object")]
    NotObject,
    #[error("binary frames are not accepted; send JSON text")]
    Binary,
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    #[error("field `{0}` has the wrong type")]
    WrongType(&'static str),
    #[error("field `{0}` is empty")]
    Empty(&'static str),
    #[error("field `{0}` is longer than {1} characters")]
    TooLong(&'static str, usize),
    #[error("field `{0}` has more than {1} entries")]
    TooMany(&'static str, usize),
    #[error("field `{0}` must be a whole number from 0 to {1}")]
    OutOfRange(&'static str, u64),
    #[error("unknown message type")]
    UnknownType,
    #[error("more than {0} top-level fields")]
    TooManyFields(usize),
    #[error("messages other than offer, answer and candidate are limited to {0} bytes")]
    ControlTooLong(usize),
    #[error("This room is full ({0} people).")]
    Full(usize),
    #[error("join a room first")]
    NotInRoom,
    #[error("no member with that id in your room")]
    UnknownPeer,
    #[error("too many messages; this one was dropped")]
    RateLimited,
    #[error("too many logins from your network; try again in a minute")]
    CredentialsRateLimited,
    #[error("your network has created too many rooms; join one of them or close one")]
    TooManyRooms,
    #[error("the server has no room for another room")]
    ServerFull,
    #[error("too many connections")]
    TooManyConnections,
    #[error("This room is locked: the host lets nobody new in.")]
    Locked,
    #[error("This room has a password.")]
    PasswordRequired,
    #[error("Wrong password.")]
    WrongPassword,
    #[error("too many wrong passwords from your network; try again in a minute")]
    PasswordRateLimited,
    #[error("The host removed you from this room.")]
    Removed,
    #[error("The host did not let you in.")]
    Declined,
    #[error("Too many people are waiting to be let in; try again later.")]
    LobbyFull,
    #[error("Nobody let you in; knock again to keep waiting.")]
    LobbyTimeout,
    #[error("Everyone left the room before letting you in.")]
    LobbyClosed,
    #[error("only the host can do that")]
    NotHost,
    #[error("room names must be at least {0} characters")]
    RoomNameTooShort(usize),
    #[error("The servers cannot place this room right now; try again in a moment.")]
    Unavailable,
    #[error("this server has no SFU (sfu.enabled is off)")]
    SfuOff,
    #[error("this room is a mesh now: connect to the other members directly")]
    NotSfu,
    #[error("The server's media relay is full ({0} people); try again later.")]
    SfuFull(usize),
    #[error("the server's media relay is busy; try again in a moment")]
    SfuBusy,
    #[error("no SFU connection is waiting for that (send sfu-join first)")]
    SfuNotJoined,
}

impl From<FieldsError> for SignalError {
    fn from(e: FieldsError) -> SignalError {
        match e {
            FieldsError::NotJson => SignalError::NotJson,
            FieldsError::NotObject => SignalError::NotObject,
            FieldsError::TooMany => SignalError::TooManyFields(MAX_FIELDS),
        }
    }
}

impl SignalError {
    /// The `errorType` string of `docs/protocol.md`.
    pub fn error_type(&self) -> &'static str {
        use SignalError::*;
        match self {
            NotJson | NotObject | Binary | Missing(_) | WrongType(_) | Empty(_) | TooLong(..)
            | TooMany(..) | OutOfRange(..) | UnknownType | TooManyFields(_) | ControlTooLong(_) => {
                "bad-request"
            }
            Full(_) => "full",
            NotInRoom => "not-in-room",
            UnknownPeer => "unknown-peer",
            RateLimited | CredentialsRateLimited => "rate-limited",
            TooManyRooms => "too-many-rooms",
            ServerFull => "server-full",
            TooManyConnections => "too-many-connections",
            Locked => "locked",
            PasswordRequired => "password-required",
            WrongPassword => "wrong-password",
            PasswordRateLimited => "rate-limited",
            Removed => "removed",
            Declined => "declined",
            LobbyFull => "lobby-full",
            LobbyTimeout => "lobby-timeout",
            LobbyClosed => "lobby-closed",
            NotHost => "not-host",
            RoomNameTooShort(_) => "room-name-too-short",
            Unavailable => "unavailable",
            SfuOff => "sfu-off",
            NotSfu => "not-sfu",
            SfuFull(_) => "sfu-full",
            SfuBusy => "sfu-busy",
            SfuNotJoined => "sfu-not-joined",
        }
    }

    /// `{type:'error', message:{errorType, errorText}}`, as the seed sends it.
    pub fn to_frame(&self) -> Utf8Bytes {
        frame(&json!({
            "type": "error",
            "message": {"errorType": self.error_type(), "errorText": self.to_string()},
        }))
    }
}

/// The three message kinds relayed to one member as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayKind {
    Offer,
    Answer,
    Candidate,
}

/// `data.resume` of a login: the session id and token of a `joined` this client got before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub session_id: String,
    pub token: String,
}

/// What a host may do to one member (or, for admit and decline, to one knocker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostAction {
    HandOver,
    Admit,
    Decline,
    Remove,
    /// Ask the member to turn its microphone (false: its camera) off.
    AskMute {
        audio: bool,
    },
}

/// A host's change to the room's settings: each field left out stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomChange {
    pub locked: Option<bool>,
    pub lobby: Option<bool>,
    pub history: Option<bool>,
    /// `Some(None)` clears the password.
    pub password: Option<Option<Secret>>,
}

/// What a client asks of the server's SFU (extension, addressed to the server: no `to`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SfuRequest {
    /// `sfu-join`: connect this member to the SFU; the server answers `sfu-offer`.
    Join,
    /// `sfu-answer`: the SDP answer to the server's last `sfu-offer`.
    Answer(String),
    /// `sfu-candidate`: one ICE candidate line of the client (`candidate:...`).
    Candidate(String),
    /// `sfu-leave`: close this member's SFU connection.
    Leave,
    /// `sfu-view`: the size (device pixels) each remote video is shown at; 0x0 is not shown.
    View(Vec<SfuView>),
    /// `sfu-unpublish`: the member stopped sharing its screen (the only source it may
    /// unpublish; the others go with `sfu-leave`).
    UnpublishScreen,
}

/// One entry of `sfu-view`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfuView {
    pub mid: String,
    pub width: u32,
    pub height: u32,
}

/// Most entries an `sfu-view` may have (more than any room has videos).
pub const MAX_SFU_VIEWS: usize = 512;
/// Largest width or height an `sfu-view` may give.
pub const MAX_VIEW_PIXELS: u64 = 16_384;
/// Longest mid an `sfu-view` entry may name.
pub const MAX_SFU_MID_CHARS: usize = 32;

/// Longest frame the WebSocket takes when the SFU is on: an `sfu-answer` of a big room (one
/// m-line per track of every other member) is longer than the other messages' limit
/// (`rooms.max_message_bytes`), which still applies to everything else.
pub const MAX_SFU_FRAME_BYTES: usize = MAX_SFU_SDP_BYTES + MAX_SFU_SDP_BYTES / 4;

/// Whether a frame is an `sfu-answer` (looked at without building a tree).
pub fn is_sfu_answer(text: &str) -> bool {
    Fields::parse(text)
        .ok()
        .and_then(|f| f.get_str("type"))
        .is_some_and(|t| t.is_ok_and(|t| t == "sfu-answer"))
}

/// Longest SDP answer (or candidate) an `sfu-*` message may carry; the WebSocket's own
/// message limit (`rooms.max_message_bytes`) applies first.
pub const MAX_SFU_SDP_BYTES: usize = 256 * 1024;

/// A validated client message; a relayed one borrows from the frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage<'a> {
    RandomCheck {
        room: String,
    },
    Login {
        room: String,
        username: String,
        resume: Option<Resume>,
        /// Extension: the room's password.
        password: Option<Secret>,
        /// Extension: the client can use the server's SFU (`data.sfu: true`).
        sfu: bool,
    },
    /// `fields` is the whole object as sent; `from` is overwritten by [`relay_frame`].
    Relay {
        kind: RelayKind,
        to: Cow<'a, str>,
        fields: Fields<'a>,
    },
    Logout,
    /// Extension: fresh `iceServers` without joining (a connection check before a login).
    IceServers,
    /// Extension, host only: `roomSettings`.
    Configure(RoomChange),
    /// Extension, host only: `handOver`, `admit`, `decline`, `remove`, `askMute`.
    Host {
        action: HostAction,
        to: String,
    },
    /// Extension, host only: `endCall`.
    EndCall,
    /// Extension: `sfu-join`, `sfu-answer`, `sfu-candidate`, `sfu-leave`.
    Sfu(SfuRequest),
}

impl ClientMessage<'_> {
    /// The `type` for logs (never the body).
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::RandomCheck { .. } => "randomCheck",
            ClientMessage::Login { .. } => "login",
            ClientMessage::Relay {
                kind: RelayKind::Offer,
                ..
            } => "offer",
            ClientMessage::Relay {
                kind: RelayKind::Answer,
                ..
            } => "answer",
            ClientMessage::Relay {
                kind: RelayKind::Candidate,
                ..
            } => "candidate",
            ClientMessage::Logout => "logout",
            ClientMessage::IceServers => "iceServers",
            ClientMessage::Configure(_) => "roomSettings",
            ClientMessage::Host { action, .. } => match action {
                HostAction::HandOver => "handOver",
                HostAction::Admit => "admit",
                HostAction::Decline => "decline",
                HostAction::Remove => "remove",
                HostAction::AskMute { .. } => "askMute",
            },
            ClientMessage::EndCall => "endCall",
            ClientMessage::Sfu(r) => match r {
                SfuRequest::Join => "sfu-join",
                SfuRequest::Answer(_) => "sfu-answer",
                SfuRequest::Candidate(_) => "sfu-candidate",
                SfuRequest::Leave => "sfu-leave",
                SfuRequest::View(_) => "sfu-view",
                SfuRequest::UnpublishScreen => "sfu-unpublish",
            },
        }
    }
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<ClientMessage<'_>, SignalError> {
    // Relays are nearly all the traffic: their fields are checked and kept as raw text, never
    // built into a tree. The rare other messages take the simple road.
    let fields = Fields::parse(text)?;
    let kind = match fields.get_str("type") {
        None => return Err(SignalError::Missing("type")),
        Some(Ok(s)) => s,
        Some(Err(())) => return Err(SignalError::WrongType("type")),
    };
    let relay = match &*kind {
        "randomCheck" | "login" | "logout" | "iceServers" | "roomSettings" | "handOver"
        | "admit" | "decline" | "remove" | "askMute" | "endCall" | "sfu-join" | "sfu-leave" => {
            if text.len() > MAX_CONTROL_BYTES {
                return Err(SignalError::ControlTooLong(MAX_CONTROL_BYTES));
            }
            return parse_value(text);
        }
        // SDP: longer than a control message, read as a tree (the server reads it).
        "sfu-answer" | "sfu-candidate" => return parse_sfu_sdp(text),
        "sfu-view" | "sfu-unpublish" => return parse_sfu_view(text),
        "offer" => RelayKind::Offer,
        "answer" => RelayKind::Answer,
        "candidate" => RelayKind::Candidate,
        _ => return Err(SignalError::UnknownType),
    };
    let to = match fields.get_str("to") {
        None => return Err(SignalError::Missing("to")),
        Some(Ok(s)) => s,
        Some(Err(())) => return Err(SignalError::WrongType("to")),
    };
    if fields.get("data").is_none() {
        return Err(SignalError::Missing("data"));
    }
    Ok(ClientMessage::Relay {
        kind: relay,
        to,
        fields,
    })
}

/// `randomCheck`, `login` and `logout`, from a frame [`Fields::parse`] accepted.
fn parse_value(text: &str) -> Result<ClientMessage<'static>, SignalError> {
    let value: Value = serde_json::from_str(text).map_err(|_| SignalError::NotJson)?;
    let Value::Object(fields) = value else {
        return Err(SignalError::NotObject);
    };
    match fields.get("type").and_then(Value::as_str) {
        Some("randomCheck") => {
            let room = text_field(fields.get("data"), "data", MAX_ROOM_CHARS)?;
            Ok(ClientMessage::RandomCheck { room })
        }
        Some("login") => parse_login(fields.get("data")),
        Some("logout") => Ok(ClientMessage::Logout),
        Some("iceServers") => Ok(ClientMessage::IceServers),
        Some("roomSettings") => parse_settings(fields.get("data")),
        Some("endCall") => Ok(ClientMessage::EndCall),
        Some("sfu-join") => Ok(ClientMessage::Sfu(SfuRequest::Join)),
        Some("sfu-leave") => Ok(ClientMessage::Sfu(SfuRequest::Leave)),
        Some(kind) => {
            let action = match kind {
                "handOver" => HostAction::HandOver,
                "admit" => HostAction::Admit,
                "decline" => HostAction::Decline,
                "remove" => HostAction::Remove,
                "askMute" => {
                    let kind = fields.get("data").and_then(|d| d.get("kind"));
                    match kind.and_then(Value::as_str) {
                        Some("audio") => HostAction::AskMute { audio: true },
                        Some("video") => HostAction::AskMute { audio: false },
                        Some(_) => return Err(SignalError::WrongType("data.kind")),
                        None if kind.is_none() => return Err(SignalError::Missing("data.kind")),
                        None => return Err(SignalError::WrongType("data.kind")),
                    }
                }
                _ => return Err(SignalError::UnknownType),
            };
            let to = text_field(fields.get("to"), "to", MAX_RESUME_CHARS)?;
            Ok(ClientMessage::Host { action, to })
        }
        None => Err(SignalError::UnknownType),
    }
}

/// `sfu-view` (`data.views`) and `sfu-unpublish` (`data.source`).
fn parse_sfu_view(text: &str) -> Result<ClientMessage<'static>, SignalError> {
    let value: Value = serde_json::from_str(text).map_err(|_| SignalError::NotJson)?;
    let data = match value.get("data") {
        None => return Err(SignalError::Missing("data")),
        Some(d @ Value::Object(_)) => d,
        Some(_) => return Err(SignalError::WrongType("data")),
    };
    if value.get("type").and_then(Value::as_str) == Some("sfu-unpublish") {
        return match data.get("source") {
            None => Err(SignalError::Missing("data.source")),
            Some(Value::String(s)) if s == "screen" => {
                Ok(ClientMessage::Sfu(SfuRequest::UnpublishScreen))
            }
            Some(_) => Err(SignalError::WrongType("data.source")),
        };
    }
    let views = match data.get("views") {
        None => return Err(SignalError::Missing("data.views")),
        Some(Value::Array(v)) if v.len() > MAX_SFU_VIEWS => {
            return Err(SignalError::TooMany("data.views", MAX_SFU_VIEWS));
        }
        Some(Value::Array(v)) => v,
        Some(_) => return Err(SignalError::WrongType("data.views")),
    };
    let size = |v: &Value, key: &str, name: &'static str| match v.get(key) {
        None => Err(SignalError::Missing(name)),
        Some(n) => n
            .as_u64()
            .filter(|n| *n <= MAX_VIEW_PIXELS)
            .map(|n| n as u32)
            .ok_or(SignalError::OutOfRange(name, MAX_VIEW_PIXELS)),
    };
    let mut out = Vec::with_capacity(views.len());
    for v in views {
        let mid = match v.get("mid") {
            None => return Err(SignalError::Missing("data.views[].mid")),
            Some(Value::String(m)) if m.len() > MAX_SFU_MID_CHARS => {
                return Err(SignalError::TooLong("data.views[].mid", MAX_SFU_MID_CHARS));
            }
            Some(Value::String(m)) => m,
            Some(_) => return Err(SignalError::WrongType("data.views[].mid")),
        };
        out.push(SfuView {
            mid: mid.to_owned(),
            width: size(v, "width", "data.views[].width")?,
            height: size(v, "height", "data.views[].height")?,
        });
    }
    Ok(ClientMessage::Sfu(SfuRequest::View(out)))
}

/// `sfu-answer` (`data.sdp`) and `sfu-candidate` (`data.candidate`).
fn parse_sfu_sdp(text: &str) -> Result<ClientMessage<'static>, SignalError> {
    let value: Value = serde_json::from_str(text).map_err(|_| SignalError::NotJson)?;
    let answer = value.get("type").and_then(Value::as_str) == Some("sfu-answer");
    let (key, name) = if answer {
        ("sdp", "data.sdp")
    } else {
        ("candidate", "data.candidate")
    };
    let field = match value.get("data") {
        None => return Err(SignalError::Missing("data")),
        Some(Value::Object(d)) => d.get(key),
        Some(_) => return Err(SignalError::WrongType("data")),
    };
    let text = match field {
        None => return Err(SignalError::Missing(name)),
        Some(Value::String(s)) if s.trim().is_empty() => return Err(SignalError::Empty(name)),
        Some(Value::String(s)) if s.len() > MAX_SFU_SDP_BYTES => {
            return Err(SignalError::TooLong(name, MAX_SFU_SDP_BYTES));
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(SignalError::WrongType(name)),
    };
    Ok(ClientMessage::Sfu(if answer {
        SfuRequest::Answer(text)
    } else {
        SfuRequest::Candidate(text)
    }))
}

/// `roomSettings`: `data` is an object of optional booleans and an optional password.
fn parse_settings(data: Option<&Value>) -> Result<ClientMessage<'static>, SignalError> {
    let data = match data {
        None => return Err(SignalError::Missing("data")),
        Some(Value::Object(d)) => d,
        Some(_) => return Err(SignalError::WrongType("data")),
    };
    let flag = |name: &'static str, key: &str| match data.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(SignalError::WrongType(name)),
    };
    let password = match data.get("password") {
        None => None,
        Some(Value::Null) => Some(None),
        v => Some(Some(Secret::new(text_field(
            v,
            "data.password",
            MAX_PASSWORD_CHARS,
        )?))),
    };
    Ok(ClientMessage::Configure(RoomChange {
        locked: flag("data.locked", "locked")?,
        lobby: flag("data.lobby", "lobby")?,
        history: flag("data.history", "history")?,
        password,
    }))
}

fn parse_login(data: Option<&Value>) -> Result<ClientMessage<'static>, SignalError> {
    let data = match data {
        None => return Err(SignalError::Missing("data")),
        Some(Value::Object(d)) => d,
        Some(_) => return Err(SignalError::WrongType("data")),
    };
    let room = text_field(data.get("roomrequest"), "data.roomrequest", MAX_ROOM_CHARS)?;
    let username = text_field(data.get("username"), "data.username", MAX_USERNAME_CHARS)?;
    let resume = match data.get("resume") {
        None | Some(Value::Null) => None,
        Some(Value::Object(r)) => match (r.get("sessionId"), r.get("token")) {
            (Some(Value::String(id)), Some(Value::String(token)))
                if id.len() <= MAX_RESUME_CHARS && token.len() <= MAX_RESUME_CHARS =>
            {
                Some(Resume {
                    session_id: id.clone(),
                    token: token.clone(),
                })
            }
            // A resume that cannot match anything is ignored, as a stale one is.
            (Some(Value::String(_)), Some(Value::String(_))) => None,
            _ => return Err(SignalError::WrongType("data.resume")),
        },
        Some(_) => return Err(SignalError::WrongType("data.resume")),
    };
    let password = match data.get("password") {
        None | Some(Value::Null) => None,
        v => Some(Secret::new(text_field(
            v,
            "data.password",
            MAX_PASSWORD_CHARS,
        )?)),
    };
    let sfu = match data.get("sfu") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(SignalError::WrongType("data.sfu")),
    };
    Ok(ClientMessage::Login {
        room,
        username,
        resume,
        password,
        sfu,
    })
}

/// A required string, trimmed, 1..=`max` characters.
fn text_field(v: Option<&Value>, name: &'static str, max: usize) -> Result<String, SignalError> {
    let s = match v {
        None => return Err(SignalError::Missing(name)),
        Some(Value::String(s)) => s.trim(),
        Some(_) => return Err(SignalError::WrongType(name)),
    };
    if s.is_empty() {
        return Err(SignalError::Empty(name));
    }
    if s.chars().count() > max {
        return Err(SignalError::TooLong(name, max));
    }
    Ok(s.to_owned())
}

/// Serializes a server message once; the result is shared by every recipient.
fn frame(v: &Value) -> Utf8Bytes {
    Utf8Bytes::from(v.to_string())
}

/// A relayed offer/answer/candidate: every field as sent, `from` set to the sender.
pub fn relay_frame(fields: &Fields<'_>, from: &str) -> Utf8Bytes {
    fields.with_from(from)
}

pub fn random_check_result(room: &str, exists: bool) -> Utf8Bytes {
    frame(&json!({
        "type": "randomCheckResult",
        "data": {"result": if exists { "fail" } else { "ok" }, "roomrequest": room},
    }))
}

/// The `login` the other members get: rebuilt, so a `resume` never travels.
pub fn login_frame(from: &str, room: &str, username: &str) -> Utf8Bytes {
    frame(&json!({
        "type": "login",
        "from": from,
        "data": {"roomrequest": room, "username": username},
    }))
}

pub fn logout_frame(from: &str, username: &str) -> Utf8Bytes {
    frame(&json!({
        "type": "logout",
        "from": from,
        "data": {"username": username, "sessionId": from},
    }))
}

/// The answer to `iceServers` (extension).
pub fn ice_servers_frame(ice_servers: Value) -> Utf8Bytes {
    frame(&json!({"type": "iceServers", "data": ice_servers}))
}

/// A room's settings as every member sees them (`roomState`, extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomState<'a> {
    pub host: &'a str,
    pub locked: bool,
    pub lobby: bool,
    pub password: bool,
    pub history: bool,
}

impl RoomState<'_> {
    fn to_json(self) -> Value {
        json!({"host": self.host, "locked": self.locked, "lobby": self.lobby,
               "password": self.password, "history": self.history})
    }
}

/// Sent to every member when the host or a setting changes (`joined` carries it as `state`).
pub fn room_state_frame(s: RoomState<'_>) -> Utf8Bytes {
    frame(&json!({"type": "roomState", "data": s.to_json()}))
}

/// Seconds with a tenth's precision, as `knocking` and `lobby` carry them.
fn tenths(d: Duration) -> f64 {
    (d.as_millis() / 100) as f64 / 10.0
}

/// The host's view of who is waiting (extension): session id, user name and how long it has
/// waited, of each.
pub fn lobby_frame<'a>(waiting: impl Iterator<Item = (&'a str, &'a str, Duration)>) -> Utf8Bytes {
    let list: Vec<Value> = waiting
        .map(|(id, name, waited)| {
            json!({"sessionId": id, "username": name, "waitedSecs": tenths(waited)})
        })
        .collect();
    frame(&json!({"type": "lobby", "data": list}))
}

/// To a newcomer put in the lobby (extension), with how long the knock stays valid.
pub fn knocking_frame(room: &str, wait: Duration) -> Utf8Bytes {
    frame(&json!({"type": "knocking", "data": {"roomrequest": room, "waitSecs": tenths(wait)}}))
}

/// The host's request to turn a microphone or camera off (extension).
pub fn ask_mute_frame(from: &str, audio: bool) -> Utf8Bytes {
    let kind = if audio { "audio" } else { "video" };
    frame(&json!({"type": "askMute", "from": from, "data": {"kind": kind}}))
}

/// The host ended the call for everyone (extension).
pub fn ended_frame(from: &str) -> Utf8Bytes {
    frame(&json!({"type": "ended", "from": from}))
}

/// A room's mode (extension): `mesh` (members connect to each other) or `sfu` (each member
/// connects to the server's SFU).
pub fn mode_frame(sfu: bool) -> Utf8Bytes {
    frame(&json!({"type": "mode", "data": {"mode": mode_name(sfu)}}))
}

fn mode_name(sfu: bool) -> &'static str {
    if sfu { "sfu" } else { "mesh" }
}

/// The members speaking now, loudest first (extension, from the SFU).
pub fn sfu_speakers_frame<'a>(speakers: impl Iterator<Item = &'a str>) -> Utf8Bytes {
    let list: Vec<&str> = speakers.collect();
    frame(&json!({"type": "sfu-speakers", "data": {"speakers": list}}))
}

/// One video the SFU paused for a subscriber's bandwidth (`sfu-paused`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfuPaused<'a> {
    pub mid: &'a str,
    /// The member whose video it is.
    pub from: &'a str,
    /// `camera` or `screen`.
    pub source: &'static str,
}

/// The videos the SFU pauses for this subscriber now (extension; `[]`: none).
pub fn sfu_paused_frame(paused: &[SfuPaused<'_>]) -> Utf8Bytes {
    let list: Vec<Value> = paused
        .iter()
        .map(|p| json!({"mid": p.mid, "from": p.from, "source": p.source}))
        .collect();
    frame(&json!({"type": "sfu-paused", "data": {"paused": list}}))
}

/// One m-line of an `sfu-offer`'s track map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfuTrack<'a> {
    pub mid: &'a str,
    /// `audio` or `video`.
    pub kind: &'static str,
    /// `mic`, `camera` or `screen`.
    pub source: &'static str,
    /// A published m-line that takes simulcast (`rids` h, m, l).
    pub simulcast: bool,
    /// The member whose track it carries (`None`: one the client publishes on).
    pub from: Option<&'a str>,
}

/// The SFU's offer (extension): the SDP, the m-lines the client publishes on, and the
/// m-lines that carry other members' tracks (mid -> member session id, kind).
pub fn sfu_offer_frame(sdp: &str, tracks: &[SfuTrack<'_>]) -> Utf8Bytes {
    let publish: Vec<Value> = tracks
        .iter()
        .filter(|t| t.from.is_none())
        .map(|t| {
            let mut v = json!({"mid": t.mid, "kind": t.kind, "source": t.source});
            if t.simulcast {
                v["rids"] = json!(["h", "m", "l"]);
            }
            v
        })
        .collect();
    let receive: Vec<Value> = tracks
        .iter()
        .filter_map(|t| {
            t.from
                .map(|f| json!({"mid": t.mid, "kind": t.kind, "from": f, "source": t.source}))
        })
        .collect();
    frame(&json!({
        "type": "sfu-offer",
        "data": {"sdp": sdp, "publish": publish, "tracks": receive},
    }))
}

/// What `joined` tells the newcomer.
pub struct Joined<'a> {
    pub session_id: &'a str,
    pub room: &'a str,
    /// The other members: (session id, user name).
    pub members: &'a [(String, String)],
    pub ice_servers: &'a Value,
    pub resume_token: &'a str,
    /// The session id is one this client had before (its `resume` was verified).
    pub resumed: bool,
    pub capacity: usize,
    pub state: RoomState<'a>,
    /// Whether the room is in SFU mode (extension `mode`).
    pub sfu: bool,
}

pub fn joined_frame(j: Joined<'_>) -> Utf8Bytes {
    let members: Vec<Value> = j
        .members
        .iter()
        .map(|(id, name)| json!({"sessionId": id, "username": name}))
        .collect();
    frame(&json!({
        "type": "joined",
        "data": j.session_id,
        "protocol": PROTOCOL_VERSION,
        "room": j.room,
        "members": members,
        "iceServers": j.ice_servers,
        "resumeToken": j.resume_token,
        "resumed": j.resumed,
        "capacity": j.capacity,
        "state": j.state.to_json(),
        "mode": mode_name(j.sfu),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> SignalError {
        match parse(text) {
            Err(e) => e,
            Ok(m) => panic!("{text} parsed as {m:?}"),
        }
    }

    #[test]
    fn bad_input_is_a_bad_request() {
        let long_name = format!(
            r#"{{"type":"login","data":{{"roomrequest":"r","username":"{}"}}}}"#,
            "x".repeat(65)
        );
        let long_room = format!(r#"{{"type":"randomCheck","data":"{}"}}"#, "r".repeat(129));
        let long_logout = format!(r#"{{"type":"logout","pad":"{}"}}"#, "p".repeat(4096));
        let fields: Vec<String> = (0..65).map(|i| format!(r#""f{i}":0"#)).collect();
        let many_fields = format!(
            r#"{{"type":"offer","to":"b","data":1,{}}}"#,
            fields.join(",")
        );
        let view = r#"{"mid":"1","width":1,"height":1}"#;
        let many_views = format!(
            r#"{{"type":"sfu-view","data":{{"views":[{}]}}}}"#,
            vec![view; MAX_SFU_VIEWS + 1].join(",")
        );
        let long_mid = format!(
            r#"{{"type":"sfu-view","data":{{"views":[{{"mid":"{}","width":1,"height":1}}]}}}}"#,
            "1".repeat(MAX_SFU_MID_CHARS + 1)
        );
        let cases: &[(&str, SignalError)] = &[
            ("", SignalError::NotJson),
            ("{", SignalError::NotJson),
            ("hello", SignalError::NotJson),
            ("[1,2]", SignalError::NotObject),
            ("42", SignalError::NotObject),
            ("\"login\"", SignalError::NotObject),
            ("null", SignalError::NotObject),
            ("{}", SignalError::Missing("type")),
            (
                r#"{"type":"login","data":{"roomrequest":"r","username":"A","sfu":"yes"}}"#,
                SignalError::WrongType("data.sfu"),
            ),
            (r#"{"type":"sfu-answer"}"#, SignalError::Missing("data")),
            (
                r#"{"type":"sfu-answer","data":{}}"#,
                SignalError::Missing("data.sdp"),
            ),
            (
                r#"{"type":"sfu-answer","data":{"sdp":7}}"#,
                SignalError::WrongType("data.sdp"),
            ),
            (
                r#"{"type":"sfu-answer","data":{"sdp":" "}}"#,
                SignalError::Empty("data.sdp"),
            ),
            (
                r#"{"type":"sfu-candidate","data":[]}"#,
                SignalError::WrongType("data"),
            ),
            (
                r#"{"type":"sfu-candidate","data":{"sdp":"x"}}"#,
                SignalError::Missing("data.candidate"),
            ),
            (
                r#"{"type":"sfu-offer","data":{"sdp":"x"}}"#,
                SignalError::UnknownType,
            ),
            (
                r#"{"type":"sfu-view","data":{}}"#,
                SignalError::Missing("data.views"),
            ),
            (
                r#"{"type":"sfu-view","data":{"views":{}}}"#,
                SignalError::WrongType("data.views"),
            ),
            (
                &many_views,
                SignalError::TooMany("data.views", MAX_SFU_VIEWS),
            ),
            (
                r#"{"type":"sfu-view","data":{"views":[{"mid":"1","width":16385,"height":90}]}}"#,
                SignalError::OutOfRange("data.views[].width", MAX_VIEW_PIXELS),
            ),
            (
                r#"{"type":"sfu-view","data":{"views":[{"mid":"1","width":160,"height":-1}]}}"#,
                SignalError::OutOfRange("data.views[].height", MAX_VIEW_PIXELS),
            ),
            (
                r#"{"type":"sfu-view","data":{"views":[{"mid":"1","width":1.5,"height":9}]}}"#,
                SignalError::OutOfRange("data.views[].width", MAX_VIEW_PIXELS),
            ),
            (
                r#"{"type":"sfu-view","data":{"views":[{"mid":"1","width":160}]}}"#,
                SignalError::Missing("data.views[].height"),
            ),
            (
                r#"{"type":"sfu-view","data":{"views":[{"width":1,"height":1}]}}"#,
                SignalError::Missing("data.views[].mid"),
            ),
            (
                &long_mid,
                SignalError::TooLong("data.views[].mid", MAX_SFU_MID_CHARS),
            ),
            (
                r#"{"type":"sfu-unpublish","data":{"source":"camera"}}"#,
                SignalError::WrongType("data.source"),
            ),
            (
                r#"{"type":"sfu-unpublish","data":{}}"#,
                SignalError::Missing("data.source"),
            ),
            (r#"{"type":7}"#, SignalError::WrongType("type")),
            (r#"{"type":"dance"}"#, SignalError::UnknownType),
            (r#"{"type":"Login"}"#, SignalError::UnknownType),
            (r#"{"type":"randomCheck"}"#, SignalError::Missing("data")),
            (
                r#"{"type":"randomCheck","data":5}"#,
                SignalError::WrongType("data"),
            ),
            (
                r#"{"type":"randomCheck","data":"  "}"#,
                SignalError::Empty("data"),
            ),
            (&long_room, SignalError::TooLong("data", 128)),
            (r#"{"type":"login"}"#, SignalError::Missing("data")),
            (
                r#"{"type":"login","data":"r"}"#,
                SignalError::WrongType("data"),
            ),
            (
                r#"{"type":"login","data":{"username":"a"}}"#,
                SignalError::Missing("data.roomrequest"),
            ),
            (
                r#"{"type":"login","data":{"roomrequest":"r"}}"#,
                SignalError::Missing("data.username"),
            ),
            (
                r#"{"type":"login","data":{"roomrequest":"r","username":null}}"#,
                SignalError::WrongType("data.username"),
            ),
            (
                r#"{"type":"login","data":{"roomrequest":"","username":"a"}}"#,
                SignalError::Empty("data.roomrequest"),
            ),
            (&long_name, SignalError::TooLong("data.username", 64)),
            (
                r#"{"type":"login","data":{"roomrequest":"r","username":"a","resume":1}}"#,
                SignalError::WrongType("data.resume"),
            ),
            (
                r#"{"type":"login","data":{"roomrequest":"r","username":"a","resume":{"token":"t"}}}"#,
                SignalError::WrongType("data.resume"),
            ),
            (
                r#"{"type":"offer","data":"sdp"}"#,
                SignalError::Missing("to"),
            ),
            (
                r#"{"type":"answer","to":1,"data":"sdp"}"#,
                SignalError::WrongType("to"),
            ),
            (
                r#"{"type":"candidate","to":"x"}"#,
                SignalError::Missing("data"),
            ),
            (&long_logout, SignalError::ControlTooLong(MAX_CONTROL_BYTES)),
            (&many_fields, SignalError::TooManyFields(64)),
            (
                r#"{"type":"login","data":{"roomrequest":"r","username":"a","password":7}}"#,
                SignalError::WrongType("data.password"),
            ),
            (r#"{"type":"roomSettings"}"#, SignalError::Missing("data")),
            (
                r#"{"type":"roomSettings","data":{"lobby":1}}"#,
                SignalError::WrongType("data.lobby"),
            ),
            (
                r#"{"type":"roomSettings","data":{"password":" "}}"#,
                SignalError::Empty("data.password"),
            ),
            (r#"{"type":"remove"}"#, SignalError::Missing("to")),
            (
                r#"{"type":"handOver","to":3}"#,
                SignalError::WrongType("to"),
            ),
            (
                r#"{"type":"askMute","to":"m"}"#,
                SignalError::Missing("data.kind"),
            ),
            (
                r#"{"type":"askMute","to":"m","data":{"kind":"screen"}}"#,
                SignalError::WrongType("data.kind"),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&err(text), want, "{text}");
            assert_eq!(want.error_type(), "bad-request");
        }
    }

    #[test]
    fn valid_messages() {
        let relay = |kind, to: &'static str, text: &'static str| ClientMessage::Relay {
            kind,
            to: to.into(),
            fields: Fields::parse(text).unwrap(),
        };
        let offer =
            r#"{"type":"offer","from":"liar","to":"b","data":{"sdp":"v=0"},"username":"Ann"}"#;
        let cand = r#"{"type":"candidate","from":"","to":"b","data":null}"#;
        let cases: Vec<(&str, ClientMessage)> = vec![
            (
                r#"{"type":"randomCheck","data":" abc "}"#,
                ClientMessage::RandomCheck { room: "abc".into() },
            ),
            (
                r#"{"type":"login","from":"","to":"","data":{"roomrequest":"r1","username":"Ann"}}"#,
                ClientMessage::Login {
                    room: "r1".into(),
                    username: "Ann".into(),
                    resume: None,
                    password: None,
                    sfu: false,
                },
            ),
            (
                r#"{"type":"login","data":{"roomrequest":"r1","username":"Bo","sfu":true}}"#,
                ClientMessage::Login {
                    room: "r1".into(),
                    username: "Bo".into(),
                    resume: None,
                    password: None,
                    sfu: true,
                },
            ),
            (
                r#"{"type":"sfu-join"}"#,
                ClientMessage::Sfu(SfuRequest::Join),
            ),
            (
                r#"{"type":"sfu-answer","data":{"sdp":"v=0"}}"#,
                ClientMessage::Sfu(SfuRequest::Answer("v=0".into())),
            ),
            (
                r#"{"type":"sfu-candidate","data":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host"}}"#,
                ClientMessage::Sfu(SfuRequest::Candidate(
                    "candidate:1 1 udp 1 127.0.0.1 9 typ host".into(),
                )),
            ),
            (
                r#"{"type":"sfu-leave"}"#,
                ClientMessage::Sfu(SfuRequest::Leave),
            ),
            (
                r#"{"type":"sfu-view","data":{"views":[{"mid":"3","width":0,"height":0},{"mid":"4","width":16384,"height":90}]}}"#,
                ClientMessage::Sfu(SfuRequest::View(vec![
                    SfuView {
                        mid: "3".into(),
                        width: 0,
                        height: 0,
                    },
                    SfuView {
                        mid: "4".into(),
                        width: 16384,
                        height: 90,
                    },
                ])),
            ),
            (
                r#"{"type":"sfu-unpublish","data":{"source":"screen"}}"#,
                ClientMessage::Sfu(SfuRequest::UnpublishScreen),
            ),
            (
                r#"{"type":"login","data":{"roomrequest":"r1","username":"Zoë","resume":{"sessionId":"s","token":"t"}}}"#,
                ClientMessage::Login {
                    room: "r1".into(),
                    username: "Zoë".into(),
                    resume: Some(Resume {
                        session_id: "s".into(),
                        token: "t".into(),
                    }),
                    password: None,
                    sfu: false,
                },
            ),
            (
                r#"{"type":"login","data":{"roomrequest":"r","username":"A","password":" pw "}}"#,
                ClientMessage::Login {
                    room: "r".into(),
                    username: "A".into(),
                    resume: None,
                    password: Some(Secret::new("pw")),
                    sfu: false,
                },
            ),
            (
                r#"{"type":"roomSettings","data":{"locked":true,"history":false,"password":null}}"#,
                ClientMessage::Configure(RoomChange {
                    locked: Some(true),
                    lobby: None,
                    history: Some(false),
                    password: Some(None),
                }),
            ),
            (
                r#"{"type":"roomSettings","data":{"lobby":false,"password":"x"}}"#,
                ClientMessage::Configure(RoomChange {
                    lobby: Some(false),
                    password: Some(Some(Secret::new("x"))),
                    ..RoomChange::default()
                }),
            ),
            (
                r#"{"type":"admit","to":"k"}"#,
                ClientMessage::Host {
                    action: HostAction::Admit,
                    to: "k".into(),
                },
            ),
            (
                r#"{"type":"askMute","to":"m","data":{"kind":"video"}}"#,
                ClientMessage::Host {
                    action: HostAction::AskMute { audio: false },
                    to: "m".into(),
                },
            ),
            (r#"{"type":"endCall"}"#, ClientMessage::EndCall),
            (r#"{"type":"logout"}"#, ClientMessage::Logout),
            (r#"{"type":"iceServers"}"#, ClientMessage::IceServers),
            (
                r#"{"type":"iceServers","from":"","data":null}"#,
                ClientMessage::IceServers,
            ),
            (offer, relay(RelayKind::Offer, "b", offer)),
            (cand, relay(RelayKind::Candidate, "b", cand)),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn relay_overwrites_from_and_keeps_the_rest() {
        let Ok(ClientMessage::Relay { fields, .. }) =
            parse(r#"{"type":"offer","from":"liar","to":"b","data":"sdp","extra":[1]}"#)
        else {
            panic!("offer did not parse");
        };
        let out: Value = serde_json::from_str(&relay_frame(&fields, "me")).unwrap_or_default();
        assert_eq!(
            out,
            json!({"type":"offer","from":"me","to":"b","data":"sdp","extra":[1]})
        );
    }

    #[test]
    fn error_frames_use_message_key() {
        let cases = [
            (
                SignalError::Full(10),
                "full",
                "This room is full (10 people).",
            ),
            (SignalError::NotInRoom, "not-in-room", "join a room first"),
            (SignalError::RateLimited, "rate-limited", ""),
            (SignalError::ServerFull, "server-full", ""),
            (SignalError::UnknownPeer, "unknown-peer", ""),
            (SignalError::TooManyConnections, "too-many-connections", ""),
            (SignalError::CredentialsRateLimited, "rate-limited", ""),
            (SignalError::TooManyRooms, "too-many-rooms", ""),
            (SignalError::Locked, "locked", ""),
            (SignalError::PasswordRequired, "password-required", ""),
            (SignalError::WrongPassword, "wrong-password", ""),
            (SignalError::PasswordRateLimited, "rate-limited", ""),
            (SignalError::Removed, "removed", ""),
            (SignalError::Declined, "declined", ""),
            (SignalError::LobbyFull, "lobby-full", ""),
            (SignalError::LobbyTimeout, "lobby-timeout", ""),
            (SignalError::LobbyClosed, "lobby-closed", ""),
            (SignalError::NotHost, "not-host", ""),
            (SignalError::RoomNameTooShort(8), "room-name-too-short", ""),
            (SignalError::Unavailable, "unavailable", ""),
        ];
        for (e, kind, text) in cases {
            let v: Value = serde_json::from_str(&e.to_frame()).unwrap_or_default();
            assert_eq!(v["type"], "error");
            assert_eq!(v["message"]["errorType"], kind);
            if !text.is_empty() {
                assert_eq!(v["message"]["errorText"], text);
            }
        }
    }
}
