//! Bearer tokens: who may call what.
//!
//! A request carries its token as `Authorization: Bearer <token>` or, from
//! the console in a browser, as the `taskyard_token` cookie that `POST
//! /login` sets (HttpOnly, SameSite=Strict). The token is looked up by its
//! SHA-256 in `api_tokens` (see [`taskyard_store::tokens`]); its role must
//! allow the route:
//!
//! | role | may |
//! | --- | --- |
//! | `viewer` | every `GET` |
//! | `operator` | + submit, cancel, retry, drain, cordon, uncordon |
//! | `admin` | + create, update and delete pools, remove nodes |
//!
//! `/healthz`, `/metrics`, `/login` and the console's assets are open. A
//! missing or unknown token is a 401 (`WWW-Authenticate: Bearer`), except
//! that a browser asking for a console page is sent to `/login`; a token of
//! too small a role is a 403. With [`AuthMode::Off`] (loopback only) every
//! request passes.
//!
//! The caller is also who the services record as having asked ([`Actor`]):
//! every change the API forwards names it, and history rows keep it.

use crate::config::AuthMode;
use crate::{ApiError, AppState};
use axum::Form;
use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use taskyard_store::tokens::{Authenticated, Role};

/// The console's cookie holding the token.
pub const COOKIE_NAME: &str = "taskyard_token";
/// How long the console's cookie lasts.
pub const COOKIE_MAX_AGE_SECS: u64 = 7 * 24 * 3600;

/// The role a request needs, or `None` for the open routes.
pub fn required_role(method: &Method, path: &str) -> Option<Role> {
    if path == "/healthz"
        || path == "/metrics"
        || path == "/login"
        || path == "/logout"
        || path.starts_with("/assets/")
    {
        return None;
    }
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        return Some(Role::Viewer);
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let role = match (method, segments.as_slice()) {
        // Running work: submit, cancel, retry.
        (&Method::POST, ["api", "v1", "tasks"])
        | (&Method::POST, ["api", "v1", "tasks", _, "cancel" | "retry"])
        | (&Method::POST, ["console", "submit"])
        // Node operations short of forgetting one.
        | (&Method::POST, ["api", "v1", "nodes", _, "drain" | "cordon" | "uncordon"]) => {
            Role::Operator
        }
        // Pools, node removal, and anything not named above.
        _ => Role::Admin,
    };
    Some(role)
}

/// The token a request presents: its bearer, else the console's cookie.
pub fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION)
        && let Ok(value) = value.to_str()
    {
        let value = value.trim();
        if let Some((scheme, token)) = value.split_once(' ')
            && scheme.eq_ignore_ascii_case("bearer")
        {
            let token = token.trim();
            if !token.is_empty() {
                return Some(token.to_owned());
            }
        }
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE_NAME && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

/// Who a request is made for, as history rows record it (see
/// `taskyard_wire::actor`): `token:<name>` of the caller's token, or
/// `api:open` when the API runs without auth and so knows no caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    /// The actor of a request that [`require`] let through with `caller`.
    pub fn of(caller: Option<&Authenticated>) -> Actor {
        Actor(match caller {
            Some(caller) => taskyard_wire::actor::token(&caller.name),
            None => taskyard_wire::actor::API_OPEN.to_owned(),
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Actor, Self::Rejection> {
        Ok(Actor::of(parts.extensions.get::<Authenticated>()))
    }
}

impl AppState {
    /// The client to forward a change with, naming `actor` as who asked.
    pub fn client_for(&self, actor: &Actor) -> taskyard_client::Client {
        self.client.clone().on_behalf_of(actor.0.clone())
    }
}

/// The middleware: checks the token against the route's role, and stores
/// the [`Authenticated`] caller in the request's extensions.
pub async fn require(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if state.auth == AuthMode::Off {
        return next.run(request).await;
    }
    let Some(needed) = required_role(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let is_page = is_console_page(&request);
    let Some(token) = presented_token(request.headers()) else {
        if is_page {
            return Redirect::to("/login").into_response();
        }
        return ApiError::Unauthorized(
            "this API needs a token: send `Authorization: Bearer <token>` \
             (create one with `taskyard token create`)"
                .to_owned(),
        )
        .into_response();
    };
    let caller = match state.store.authenticate_token(&token).await {
        Ok(Some(caller)) => caller,
        Ok(None) => {
            if is_page {
                return Redirect::to("/login").into_response();
            }
            return ApiError::Unauthorized("the token is unknown or revoked".to_owned())
                .into_response();
        }
        Err(err) => return ApiError::from(err).into_response(),
    };
    if caller.role < needed {
        return ApiError::Forbidden(format!(
            "{} {} needs the {needed} role; the token `{}` is {} {}",
            request.method(),
            request.uri().path(),
            caller.name,
            article(caller.role),
            caller.role
        ))
        .into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Viewer => "a",
        Role::Operator | Role::Admin => "an",
    }
}

/// A browser's GET of a console page (not the JSON API): sent to `/login`
/// rather than answered with a 401.
fn is_console_page(request: &Request) -> bool {
    request.method() == Method::GET
        && !request.uri().path().starts_with("/api/")
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
}

/// `GET /login`, `POST /login` and `POST /logout`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    pub token: String,
}

/// `GET /login`: a form asking for a token.
pub async fn login_page() -> Html<String> {
    Html(login_html(None))
}

/// `POST /login`: checks the token and keeps it in an HttpOnly cookie,
/// then sends the browser to the console.
pub async fn login(
    State(state): State<AppState>,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let token = match form {
        Ok(Form(form)) => form.token.trim().to_owned(),
        Err(_) => String::new(),
    };
    let known = if token.is_empty() {
        None
    } else {
        match state.store.authenticate_token(&token).await {
            Ok(found) => found,
            Err(err) => return ApiError::from(err).into_response(),
        }
    };
    let Some(Authenticated { .. }) = known else {
        return (
            StatusCode::UNAUTHORIZED,
            Html(login_html(Some("That token is unknown or revoked."))),
        )
            .into_response();
    };
    let cookie = format!(
        "{COOKIE_NAME}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={COOKIE_MAX_AGE_SECS}"
    );
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /logout`: forgets the cookie.
pub async fn logout() -> Response {
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("taskyard_token=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    response
}

fn login_html(error: Option<&str>) -> String {
    maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Taskyard — sign in" }
                style { "body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}\
                         input{width:100%;padding:.5rem;margin:.5rem 0;box-sizing:border-box;font-family:monospace}\
                         button{padding:.5rem 1rem}.error{color:#b00020}" }
            }
            body {
                h1 { "Taskyard" }
                p { "Paste an API token (" code { "taskyard token create --name NAME --role viewer" } ")." }
                @if let Some(error) = error {
                    p.error role="alert" { (error) }
                }
                form method="post" action="/login" {
                    label for="token" { "Token" }
                    input #token type="password" name="token" autocomplete="off" required autofocus;
                    button type="submit" { "Sign in" }
                }
            }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_by_route() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(required_role(&get, "/healthz"), None);
        assert_eq!(required_role(&post, "/login"), None);
        assert_eq!(required_role(&get, "/assets/console.css"), None);
        assert_eq!(required_role(&get, "/api/v1/tasks"), Some(Role::Viewer));
        assert_eq!(required_role(&get, "/"), Some(Role::Viewer));
        assert_eq!(required_role(&post, "/api/v1/tasks"), Some(Role::Operator));
        assert_eq!(
            required_role(&post, "/api/v1/tasks/x/retry"),
            Some(Role::Operator)
        );
        assert_eq!(
            required_role(&post, "/api/v1/nodes/n1/drain"),
            Some(Role::Operator)
        );
        assert_eq!(required_role(&post, "/api/v1/pools"), Some(Role::Admin));
        assert_eq!(
            required_role(&Method::DELETE, "/api/v1/nodes/n1"),
            Some(Role::Admin)
        );
        assert_eq!(
            required_role(&Method::PUT, "/api/v1/pools/gpu"),
            Some(Role::Admin)
        );
        assert_eq!(
            required_role(&post, "/console/pools/gpu"),
            Some(Role::Admin)
        );
    }

    #[test]
    fn the_actor_is_the_tokens_name_or_the_open_api() {
        let caller = Authenticated {
            id: uuid::Uuid::now_v7(),
            name: "ci".to_owned(),
            role: Role::Operator,
        };
        assert_eq!(Actor::of(Some(&caller)).0, "token:ci");
        assert_eq!(Actor::of(None).0, "api:open");
    }

    #[test]
    fn the_token_comes_from_the_bearer_or_the_cookie() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_token(&headers), None);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; taskyard_token=ty_cookie"),
        );
        assert_eq!(presented_token(&headers).as_deref(), Some("ty_cookie"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer ty_header"),
        );
        assert_eq!(presented_token(&headers).as_deref(), Some("ty_header"));
    }
}
