//! `GET /dead-letters`: messages no consumer could handle.

use super::{Page, layout};
use crate::AppState;
use crate::readable::format_time;
use axum::extract::State;
use axum::response::Html;
use maud::html;

/// Dead letters shown, newest first.
pub const SHOWN: u32 = 200;

/// `GET /dead-letters`.
pub async fn page(State(state): State<AppState>) -> Page {
    let letters = state.store.list_dead_letters(SHOWN).await?;
    let body = html! {
        div #dead-letters data-live {
            section.card {
                h2 { "Dead letters " small { (letters.len()) } }
                @if letters.is_empty() {
                    p.empty { "None: every message was handled." }
                } @else {
                    table {
                        thead { tr {
                            th { "at (UTC)" } th { "stream / consumer" } th.num { "seq" }
                            th { "subject" } th.num { "deliveries" } th { "reason" } th { "payload" }
                        } }
                        tbody {
                            @for letter in &letters {
                                tr {
                                    td.time { (format_time(letter.at)) }
                                    td { (letter.stream) " / " (letter.consumer) }
                                    td.num { (letter.stream_seq) }
                                    td { code { (letter.subject) } }
                                    td.num { (letter.deliveries) }
                                    td.reason { (letter.reason) }
                                    td { details { summary { "payload" } pre { (letter.payload) } } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Html(
        layout("Dead letters", "dead-letters", body).into_string(),
    ))
}
