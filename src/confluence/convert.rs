//! Turning vetted records into pages (storage format to Markdown and text):
//! CPU work, done on the blocking pool, off the threads that drive requests.
//!
//! The last answer of a listing releases hundreds of pages at once, and the
//! sync cannot end before they are indexed. Converted in one piece, they would
//! keep one core busy before the first of them reached the store; in chunks,
//! side by side, the index starts on the first chunk while the others are
//! converted.

use super::{ConfluenceError, PageSink, sink_closed};
use crate::model::Page;
use futures::StreamExt as _;
use std::sync::LazyLock;

/// Pages converted by one blocking task: a task costs a few microseconds,
/// a page about ten.
const CHUNK: usize = 50;

/// Most chunks converted at once by one listing.
const SIDE_BY_SIDE_AT_MOST: usize = 4;

/// Chunks converted at once: the cores this process may use, up to
/// [`SIDE_BY_SIDE_AT_MOST`]. Read once: on Linux the answer comes from the
/// affinity mask and the cgroup's CPU quota files, not worth reading again
/// for every batch a listing releases.
static SIDE_BY_SIDE: LazyLock<usize> = LazyLock::new(|| {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(SIDE_BY_SIDE_AT_MOST)
});

/// Converts `items` with `convert` and hands the pages to `sink` in order,
/// a chunk at a time, each as soon as it and those before it are done.
pub(crate) async fn hand_over<T, F>(
    items: Vec<T>,
    convert: F,
    sink: &PageSink,
) -> Result<(), ConfluenceError>
where
    T: Send + 'static,
    F: Fn(T) -> Page + Clone + Send + 'static,
{
    let side_by_side = *SIDE_BY_SIDE;
    let mut items = items.into_iter();
    let chunks = std::iter::from_fn(move || {
        let chunk: Vec<T> = items.by_ref().take(CHUNK).collect();
        (!chunk.is_empty()).then_some(chunk)
    });
    let mut converted = futures::stream::iter(chunks)
        .map(|chunk| {
            let convert = convert.clone();
            tokio::task::spawn_blocking(move || chunk.into_iter().map(convert).collect::<Vec<_>>())
        })
        .buffered(side_by_side);
    while let Some(pages) = converted.next().await {
        let pages = pages
            .map_err(|e| ConfluenceError::Protocol(format!("converting pages failed: {e}")))?;
        sink.send(pages).await.map_err(|_| sink_closed())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ContentType;

    fn page(n: usize) -> Page {
        Page {
            id: n.to_string(),
            content_type: ContentType::Page,
            title: format!("Page {n}"),
            body_markdown: String::new(),
            body_text: String::new(),
            url: String::new(),
            version: 1,
            labels: Vec::new(),
            ancestors: Vec::new(),
            updated_at: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_page_arrives_once_in_order_a_chunk_at_a_time() {
        let (sink, mut pages) = tokio::sync::mpsc::channel(1);
        let items: Vec<usize> = (0..2 * CHUNK + 23).collect();
        let handing = tokio::spawn(async move { hand_over(items, page, &sink).await });
        let mut sizes = Vec::new();
        let mut ids = Vec::new();
        while let Some(chunk) = pages.recv().await {
            sizes.push(chunk.len());
            ids.extend(chunk.into_iter().map(|p| p.id));
        }
        assert!(matches!(handing.await, Ok(Ok(()))));
        assert_eq!(sizes, vec![CHUNK, CHUNK, 23]);
        let want: Vec<String> = (0..2 * CHUNK + 23).map(|n| n.to_string()).collect();
        assert_eq!(ids, want);
    }

    #[tokio::test]
    async fn a_sync_that_stopped_taking_pages_ends_the_hand_over() {
        let (sink, pages) = tokio::sync::mpsc::channel(1);
        drop(pages);
        let ended = hand_over(vec![1, 2, 3], page, &sink).await;
        assert!(
            matches!(ended, Err(ConfluenceError::Transient(_))),
            "{ended:?}"
        );
    }
}
