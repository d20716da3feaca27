//! What the client commands (`cluster`, `partitions`) share: the arguments that reach a
//! node's client port (`--connect`, `--cluster-name`, `--timeout-ms`, `--json`, the secret
//! from KOMMANDER_AUTH_SECRET), the authenticated connection, and how an answer is printed
//! and turned into an exit code (0 done, 1 refused or failed).
#![allow(clippy::print_stdout)] // the answer is the commands' output

use std::process::ExitCode;
use std::time::Duration;

use kommander_raft::transport::tcp::client::{ClientConnection, ClientRequest, ClientResponse};

use crate::node::AUTH_SECRET_ENV;
use crate::{EXIT_FAILURE, EXIT_USAGE};

/// How to reach a node's client port.
#[derive(Debug, clap::Args)]
pub(crate) struct ConnectArgs {
    /// The client port of any node of the cluster (`kommander node --client-listen`).
    #[arg(long, value_name = "ADDR")]
    pub(crate) connect: String,
    /// The cluster's name (`cluster_name` of the nodes' configuration); the secret comes
    /// from KOMMANDER_AUTH_SECRET, as for the node.
    #[arg(long, value_name = "NAME")]
    pub(crate) cluster_name: String,
    /// How long to wait for the connection and for the answer, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 15_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout_ms: u64,
    /// Print the answer as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// A failure before an answer: the exit code and the message.
pub(crate) type Failure = (u8, String);

impl ConnectArgs {
    /// An authenticated connection to `address` (the secret from KOMMANDER_AUTH_SECRET).
    ///
    /// # Errors
    ///
    /// A secret that is not UTF-8 (usage), the connection or handshake failing.
    pub(crate) fn connect_to(&self, address: &str) -> Result<ClientConnection, Failure> {
        let secret = match std::env::var_os(AUTH_SECRET_ENV) {
            Some(secret) => Some(
                secret
                    .into_string()
                    .map_err(|_| (EXIT_USAGE, format!("{AUTH_SECRET_ENV} is not valid UTF-8")))?,
            ),
            None => None,
        };
        ClientConnection::connect(
            address,
            &self.cluster_name,
            secret.as_deref(),
            Duration::from_millis(self.timeout_ms),
        )
        .map_err(|e| (EXIT_FAILURE, e.to_string()))
    }

    /// Connects to `--connect` and sends `request`: the answer.
    ///
    /// # Errors
    ///
    /// As [`ConnectArgs::connect_to`]; the call failing.
    pub(crate) fn ask(&self, request: &ClientRequest) -> Result<ClientResponse, Failure> {
        let mut connection = self.connect_to(&self.connect)?;
        call(&mut connection, &self.connect, request)
    }
}

/// Sends `request` on `connection` (to `address`) and waits for the answer.
///
/// # Errors
///
/// The call failing, with the address.
pub(crate) fn call(
    connection: &mut ClientConnection,
    address: &str,
    request: &ClientRequest,
) -> Result<ClientResponse, Failure> {
    connection
        .call(request)
        .map_err(|e| (EXIT_FAILURE, format!("{address}: {e}")))
}

/// What a command makes of an answer: whether it is what was asked, the text to print, and
/// the same as JSON.
pub(crate) struct Reported {
    pub(crate) ok: bool,
    pub(crate) text: String,
    pub(crate) value: serde_json::Value,
}

impl Reported {
    /// The answers every command reads alike: `Unknown`, `Failed`, and one it did not expect.
    pub(crate) fn common(response: &ClientResponse) -> Self {
        let (text, value) = match response {
            ClientResponse::Unknown { reason } => (
                format!("outcome unknown: {reason}"),
                serde_json::json!({ "status": "Unknown", "reason": reason }),
            ),
            ClientResponse::Failed { reason } => (
                format!("failed: {reason}"),
                serde_json::json!({ "status": "Failed", "reason": reason }),
            ),
            other => (
                format!("unexpected answer: {other:?}"),
                serde_json::json!({ "status": "BadResponse" }),
            ),
        };
        Self {
            ok: false,
            text,
            value,
        }
    }

    /// Prints the report of `command` (stdout; a refusal's text on stderr) and returns its
    /// exit code.
    pub(crate) fn print(&self, command: &str, json: bool) -> ExitCode {
        if json {
            println!("{}", self.value);
        } else if self.ok {
            println!("{}", self.text);
        }
        if self.ok {
            ExitCode::SUCCESS
        } else {
            if !json {
                eprintln!("kommander {command}: {}", self.text);
            }
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Prints a failure of `command` on stderr; its exit code.
pub(crate) fn fail(command: &str, (code, message): Failure) -> ExitCode {
    eprintln!("kommander {command}: {message}");
    ExitCode::from(code)
}
