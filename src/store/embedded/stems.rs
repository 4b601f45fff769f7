//! The analyzer the index writer runs the text fields through: tantivy's
//! `en_stem` (split on what is not alphanumeric, drop tokens over 40 bytes,
//! lowercase, English Snowball stemming), producing the same tokens, with
//! each word's stem remembered. Stemming was a third of the indexing
//! thread's time, and the end of every sync waits for that thread; prose
//! repeats its words, so most stems are looked up instead of computed.

use std::collections::HashMap;
use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, Token, TokenFilter, TokenStream,
    Tokenizer, TokenizerManager,
};

/// The name the schema's text fields give their analyzer. Kept as tantivy
/// names it, so the schema (and every index written with it) is unchanged.
pub const NAME: &str = "en_stem";

/// Stems remembered per analyzer. Frequent words come early in any text, so
/// a full memo stops growing rather than evicting. Each indexed segment
/// starts a fresh memo (see `Clone`), so this bounds memory during a sync,
/// and nothing is held between syncs.
const REMEMBERED: usize = 16_384;

/// tantivy's analyzers, with `en_stem` remembering stems: for the index
/// writer's handle of the index.
pub fn indexing() -> TokenizerManager {
    let analyzers = TokenizerManager::default();
    analyzers.register(NAME, english());
    analyzers
}

fn english() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(RememberedStems)
        .build()
}

#[derive(Clone, Copy)]
struct RememberedStems;

impl TokenFilter for RememberedStems {
    type Tokenizer<T: Tokenizer> = StemFilter<T>;

    fn transform<T: Tokenizer>(self, inner: T) -> StemFilter<T> {
        StemFilter {
            inner,
            stems: Stems::new(),
        }
    }
}

#[derive(Clone)]
struct StemFilter<T> {
    inner: T,
    stems: Stems,
}

impl<T: Tokenizer> Tokenizer for StemFilter<T> {
    type TokenStream<'a> = StemStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        StemStream {
            tail: self.inner.token_stream(text),
            stems: &mut self.stems,
        }
    }
}

struct Stems {
    stemmer: frostem::Stemmer,
    memo: HashMap<Box<str>, Box<str>, rustc_hash::FxBuildHasher>,
}

impl Stems {
    fn new() -> Self {
        Self {
            stemmer: frostem::Stemmer::new(frostem::Algorithm::English),
            memo: HashMap::default(),
        }
    }

    /// Replaces `word` by its stem.
    fn stem(&mut self, word: &mut String) {
        if let Some(stem) = self.memo.get(word.as_str()) {
            word.clear();
            word.push_str(stem);
            return;
        }
        let stem = self.stemmer.stem(word).into_owned();
        if self.memo.len() < REMEMBERED {
            self.memo.insert(word.as_str().into(), stem.as_str().into());
        }
        *word = stem;
    }
}

/// A clone starts with an empty memo: tantivy clones the analyzer for every
/// segment it indexes, and a memo carried over would only grow the next.
impl Clone for Stems {
    fn clone(&self) -> Self {
        Self::new()
    }
}

struct StemStream<'a, T> {
    tail: T,
    stems: &'a mut Stems,
}

impl<T: TokenStream> TokenStream for StemStream<'_, T> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        self.stems.stem(&mut self.tail.token_mut().text);
        true
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<Token> {
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().clone());
        }
        out
    }

    /// The index stays readable by what wrote it before: every token,
    /// offset and position is tantivy's own `en_stem`'s, also once words
    /// repeat (stems from the memo) and past the memo's size.
    #[test]
    fn same_tokens_as_tantivys_en_stem() {
        let mut theirs = TokenizerManager::default()
            .get(NAME)
            .expect("tantivy registers en_stem");
        let mut ours = indexing().get(NAME).expect("registered");
        let mut texts = vec![
            "Deploying deployments: the deployer deployed; DEPLOYS again.".to_string(),
            "Running runners ran; généralement les déploiements, naïve café, 東京 tokyo"
                .to_string(),
            "id_42 v1.2.3 don't it's O'Reilly e-mail x".to_string(),
            format!("short {} tail", "a".repeat(41)),
        ];
        // Past the memo's size: distinct words, then the first ones again.
        let many: Vec<String> = (0..REMEMBERED + 100)
            .map(|i| format!("word{i}ing"))
            .collect();
        texts.push(many.join(" "));
        texts.push(texts[0].clone());
        for text in &texts {
            let want = tokens(&mut theirs, text);
            let got = tokens(&mut ours, text);
            assert_eq!(want.len(), got.len(), "{text}");
            for (w, g) in want.iter().zip(&got) {
                assert_eq!(
                    (&w.text, w.offset_from, w.offset_to, w.position),
                    (&g.text, g.offset_from, g.offset_to, g.position),
                );
            }
        }
    }
}
