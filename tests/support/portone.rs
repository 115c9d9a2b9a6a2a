//! PortOne's JSON as a client of its own reads it, for the tests and the
//! bench that call PortOne (the sandbox) directly, beside the facade.

use std::time::Duration;

use serde::Deserialize;

/// The `{code, message, response}` envelope of every api.iamport.kr answer.
#[derive(Deserialize)]
pub struct Envelope<T> {
    pub code: i64,
    pub message: Option<String>,
    pub response: Option<T>,
}

/// `response` of getToken, as far as a client needs it.
#[derive(Deserialize)]
pub struct Token {
    pub access_token: String,
}

/// `response` of the prepare calls, as far as a client checks it.
#[derive(Deserialize)]
pub struct Prepared {
    pub merchant_uid: String,
}

/// `POST {base}/users/getToken` with these credentials: the access token.
pub async fn get_token(
    http: &reqwest::Client,
    base: &str,
    imp_key: &str,
    imp_secret: &str,
    timeout: Duration,
) -> Result<String, String> {
    let answer = http
        .post(format!("{base}/users/getToken"))
        .json(&serde_json::json!({"imp_key": imp_key, "imp_secret": imp_secret}))
        .timeout(timeout)
        .send()
        .await
        .map_err(|error| format!("getToken: {error}"))?;
    let envelope: Envelope<Token> = answer
        .json()
        .await
        .map_err(|error| format!("getToken answer: {error}"))?;
    Ok(envelope
        .response
        .ok_or_else(|| format!("getToken refused: {:?}", envelope.message))?
        .access_token)
}
