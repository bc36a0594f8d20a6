//! Client errors.

use brook_protocol::ResponseError;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A TCP connection could not be opened.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The broker's `host:port`.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// An open connection failed or was closed.
    #[error("connection to {addr} failed: {reason}")]
    Connection {
        /// The broker's `host:port`.
        addr: String,
        /// What happened.
        reason: String,
    },
    /// No answer within this time (`request.timeout.ms`, or a producer's `delivery.timeout.ms`
    /// for a record that could not be sent in time).
    #[error("request timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// A response that could not be decoded or did not fit the request.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The broker answered with a Kafka error code.
    #[error("{}", describe(*.code, .error, .message.as_deref()))]
    Kafka {
        /// Kafka's error code.
        code: i16,
        /// The code's name, if this client knows it.
        error: Option<ResponseError>,
        /// The broker's (or the client's) explanation.
        message: Option<String>,
    },
    /// None of the bootstrap servers (or not the broker needed) could be reached.
    #[error("no broker available: {0}")]
    NoBroker(String),
    /// A setting is invalid, or the client was used in a way it does not allow.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A producer's `send` waited `max.block.ms` for room in `buffer.memory` and got none.
    #[error(
        "failed to allocate memory within the configured max blocking time {} ms",
        .0.as_millis()
    )]
    BufferExhausted(std::time::Duration),
}

impl ClientError {
    /// A Kafka error from a response's error code and message.
    pub fn kafka(code: i16, message: Option<String>) -> ClientError {
        ClientError::Kafka {
            code,
            error: ResponseError::try_from_code(code),
            message,
        }
    }

    /// The same error again, for each of several records that failed together (an I/O error's
    /// source becomes its message, as `std::io::Error` cannot be cloned).
    pub(crate) fn duplicate(&self) -> ClientError {
        match self {
            ClientError::Connect { addr, source } => ClientError::Connection {
                addr: addr.clone(),
                reason: source.to_string(),
            },
            ClientError::Connection { addr, reason } => ClientError::Connection {
                addr: addr.clone(),
                reason: reason.clone(),
            },
            ClientError::Timeout(d) => ClientError::Timeout(*d),
            ClientError::Protocol(m) => ClientError::Protocol(m.clone()),
            ClientError::Kafka {
                code,
                error,
                message,
            } => ClientError::Kafka {
                code: *code,
                error: *error,
                message: message.clone(),
            },
            ClientError::NoBroker(m) => ClientError::NoBroker(m.clone()),
            ClientError::Config(m) => ClientError::Config(m.clone()),
            ClientError::BufferExhausted(d) => ClientError::BufferExhausted(*d),
        }
    }

    /// The Kafka error code, if the broker refused.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// `Ok(())` for code 0, else the error.
pub fn check(code: i16, message: Option<String>) -> Result<(), ClientError> {
    if code == 0 {
        Ok(())
    } else {
        Err(ClientError::kafka(code, message))
    }
}

fn describe(code: i16, error: &Option<ResponseError>, message: Option<&str>) -> String {
    let name = error
        .map(|e| format!("{e:?}"))
        .unwrap_or_else(|| format!("error code {code}"));
    match (message, error) {
        (Some(m), _) if !m.is_empty() => format!("{name}: {m}"),
        (_, Some(e)) => format!("{name}: {e}"),
        _ => name,
    }
}

/// The error for a response of the wrong kind (a broker or codec bug).
pub(crate) fn unexpected(api: &str) -> ClientError {
    ClientError::Protocol(format!("unexpected response to {api}"))
}
