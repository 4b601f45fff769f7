//! The requests of the listing: each content type's v2 listing and the v1
//! CQL pass, each walked from both ends.

use super::walk::{End, Records, Walk};
use super::{Event, V1Note};
use crate::confluence::cloud::{CloudClient, V2Content, V2List};
use crate::confluence::http::{HttpFailure, Pending, link_next};
use crate::confluence::v1::{self, MAX_PAGES, without_query_param};
use crate::confluence::{ConfluenceError, sink_closed};
use crate::model::ContentType;
use std::sync::atomic::Ordering::Relaxed;
use tokio::sync::mpsc;

impl CloudClient {
    /// One content type's v2 listing, walked by id from both ends (see
    /// [`Walk`]); each answer is sent on as it arrives.
    pub(super) async fn list_both_ends(
        &self,
        first: url::Url,
        key: &str,
        content_type: ContentType,
        events: &mpsc::Sender<Event>,
    ) -> Result<(), ConfluenceError> {
        let walk = Walk::new();
        let ordered = |sort: &str| {
            let mut url = first.clone();
            url.query_pairs_mut().append_pair("sort", sort);
            url
        };
        tokio::try_join!(
            self.list_end(End::Front, ordered("id"), key, content_type, events, &walk),
            self.list_end(End::Back, ordered("-id"), key, content_type, events, &walk),
        )?;
        Ok(())
    }

    /// One end of a v2 cursor listing. A page of bodies over the client's
    /// response cap is asked for again without them, and the rest of that
    /// end goes on bare (those pages are fetched later).
    pub(super) async fn list_end(
        &self,
        end: End,
        first: url::Url,
        key: &str,
        content_type: ContentType,
        events: &mpsc::Sender<Event>,
        walk: &Walk,
    ) -> Result<(), ConfluenceError> {
        if end == End::Back && !walk.back_may_start().await {
            return Ok(());
        }
        let mut url = first;
        let mut bare = false;
        let mut asked = 0;
        let mut pending = self.http.start_json::<V2List<V2Content>>(&url);
        while asked < MAX_PAGES {
            let answer = tokio::select! {
                biased;
                () = walk.done() => return Ok(()),
                answer = pending.answer() => answer,
            };
            asked += 1;
            let resp = match answer {
                Ok(resp) => resp,
                Err(HttpFailure::Other(ConfluenceError::TooLarge { .. }))
                    if url.query_pairs().any(|(k, _)| k == "body-format") =>
                {
                    url = without_query_param(&url, "body-format");
                    bare = true;
                    pending = self.http.start_json(&url);
                    continue;
                }
                Err(f) => {
                    return Err(v1::not_found_as(
                        f,
                        ConfluenceError::SpaceNotFound(key.to_string()),
                    ));
                }
            };
            let next = link_next(&resp.headers).or(resp.body.links.next);
            let got = resp.body.results.len();
            let more = next.is_some() && got > 0;
            if end == End::Front {
                walk.first_answer(more);
            }
            let met = walk.arrived(end, resp.body.results.iter().map(|i| i.id.as_str()));
            // The next request goes out before this answer is handed on:
            // the chain is the sync's critical path, and the consumer may be
            // busy with earlier answers.
            let last = match next {
                Some(next) if more && !met => {
                    url = v1::parse_url(&v1::absolute(&self.site, &next))?;
                    if bare {
                        url = without_query_param(&url, "body-format");
                    }
                    pending = self.http.start_json(&url);
                    false
                }
                // This end walked to the other's extreme: all is listed.
                _ => true,
            };
            let event = Event::Listed {
                content_type,
                items: resp.body.results,
                base: resp.body.links.base,
            };
            if events.send(event).await.is_err() {
                return Err(sink_closed());
            }
            if last {
                walk.finish();
                return Ok(());
            }
        }
        Err(ConfluenceError::Protocol(format!(
            "listing did not end after {MAX_PAGES} requests"
        )))
    }

    /// The v1 CQL search pass, walked by creation date from both ends.
    /// Dates can tie, so the two orders need not mirror each other; a tie
    /// split differently where the ends meet leaves its items without a
    /// record, and they take the path of items the search index lags on
    /// (fail closed). The walk also ends as soon as the v2 listing is
    /// complete and every listed item has its record (see [`Records`]).
    pub(super) async fn note_both_ends(
        &self,
        cql: &str,
        expand: &str,
        events: &mpsc::Sender<Event>,
        walk: &Walk,
        records: &Records,
    ) -> Result<(), ConfluenceError> {
        let ordered = |direction: &str| {
            let mut url = self.v1("/content/search")?;
            url.query_pairs_mut()
                .append_pair("cql", &format!("{cql} order by created {direction}"))
                .append_pair("expand", expand)
                .append_pair("limit", &self.limit().to_string());
            Ok::<_, ConfluenceError>(url)
        };
        let ends = async |end: End, url: url::Url| {
            let walked = self.note_end(end, url, events, walk, records).await;
            records.walking[end.index()].store(false, Relaxed);
            walked
        };
        tokio::try_join!(
            ends(End::Front, ordered("asc")?),
            ends(End::Back, ordered("desc")?),
        )?;
        Ok(())
    }

    /// One end of the CQL pass.
    pub(super) async fn note_end(
        &self,
        end: End,
        first: url::Url,
        events: &mpsc::Sender<Event>,
        walk: &Walk,
        records: &Records,
    ) -> Result<(), ConfluenceError> {
        if end == End::Back && !walk.back_may_start().await {
            return Ok(());
        }
        let mut url = first;
        // A request sent before the previous answer was handed on.
        let mut early: Option<Pending<v1::List<V1Note>>> = None;
        for asked in 0..MAX_PAGES {
            if early.is_none() && (asked > 0 || end == End::Back) {
                let more = tokio::select! {
                    biased;
                    () = walk.done() => return Ok(()),
                    more = records.ask_more(end) => more,
                };
                if !more {
                    return Ok(());
                }
            }
            records.asking[end.index()].store(true, Relaxed);
            let mut pending = early
                .take()
                .unwrap_or_else(|| self.http.start_json::<v1::List<V1Note>>(&url));
            let answer = tokio::select! {
                biased;
                () = walk.done() => return Ok(()),
                answer = pending.answer() => answer,
            };
            records.asking[end.index()].store(false, Relaxed);
            let resp = answer.map_err(|f| {
                v1::not_found_as(
                    f,
                    ConfluenceError::Protocol("no /wiki/rest/api/content/search".into()),
                )
            })?;
            let got = resp.body.results.len();
            let next = resp.body.links.next;
            // An empty page with a next link would loop forever.
            let more = next.is_some() && got > 0;
            if end == End::Front && asked == 0 {
                records.granted.store(got, Relaxed);
                walk.first_answer(more);
            }
            let met = walk.arrived(end, resp.body.results.iter().map(|n| n.id.as_str()));
            let last = match next {
                Some(next) if more && !met => {
                    url = v1::parse_url(&v1::absolute(&self.wiki, &next))?;
                    false
                }
                _ => true,
            };
            // While the v2 listing runs, `ask_more` says yes without
            // waiting: the next request goes out before this answer is
            // handed on, so a busy consumer does not hold up the chain.
            // Once the listing is complete, what the fold still misses
            // decides, and that waits for this answer to be folded.
            if !last && records.listing_running() {
                records.asking[end.index()].store(true, Relaxed);
                early = Some(self.http.start_json(&url));
            }
            records.sent.fetch_add(1, Relaxed);
            if events.send(Event::Notes(resp.body.results)).await.is_err() {
                return Err(sink_closed());
            }
            if last {
                walk.finish();
                return Ok(());
            }
        }
        Err(ConfluenceError::Protocol(format!(
            "listing did not end after {MAX_PAGES} requests"
        )))
    }
}
