//! Listing conveniences over `ConfluenceApi` that only tests call: a
//! listing's items alone, and a listing collected with its pages.
#![allow(dead_code)]

use async_trait::async_trait;
use confluence_operator::confluence::{
    ConfluenceApi, ConfluenceError, ListOptions, Listing, SpaceInfo, SpaceRef,
};
use confluence_operator::model::{Page, PageRef};
use std::collections::HashSet;

#[async_trait]
pub trait ListingExt {
    /// The items of [`ConfluenceApi::list_detailed`].
    async fn list(
        &self,
        space: &SpaceInfo,
        options: &ListOptions,
    ) -> Result<Vec<PageRef>, ConfluenceError>;

    /// [`ConfluenceApi::list_streaming`], collected; the pages it did not
    /// hand over are fetched. Pages of items that vanished meanwhile are
    /// missing.
    async fn list_with_bodies(
        &self,
        space: &SpaceInfo,
        options: &ListOptions,
    ) -> Result<(Listing, Vec<Page>), ConfluenceError>;
}

#[async_trait]
impl<T: ConfluenceApi + ?Sized> ListingExt for T {
    async fn list(
        &self,
        space: &SpaceInfo,
        options: &ListOptions,
    ) -> Result<Vec<PageRef>, ConfluenceError> {
        Ok(self.list_detailed(space, options).await?.items)
    }

    async fn list_with_bodies(
        &self,
        space: &SpaceInfo,
        options: &ListOptions,
    ) -> Result<(Listing, Vec<Page>), ConfluenceError> {
        let (sink, mut handed) = tokio::sync::mpsc::channel(2);
        let collect = async move {
            let mut pages: Vec<Page> = Vec::new();
            while let Some(batch) = handed.recv().await {
                pages.extend(batch);
            }
            pages
        };
        let known = SpaceRef::known(space.clone());
        let (listing, mut pages) =
            tokio::join!(self.list_streaming(&known, options, sink), collect);
        let listing = listing?;
        let have: HashSet<&str> = pages.iter().map(|p| p.id.as_str()).collect();
        let missing: Vec<PageRef> = listing
            .items
            .iter()
            .filter(|r| !have.contains(r.id.as_str()))
            .cloned()
            .collect();
        if !missing.is_empty() {
            pages.extend(self.fetch(space, &missing).await?);
        }
        Ok((listing, pages))
    }
}
