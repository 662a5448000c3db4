#pragma once
/// pycocoevalcap's tokenisation (docs/DATA.md, "Tokenisation"): Stanford CoreNLP 3.4.1's
/// PTBTokenizer with -preserveLines -lowerCase, then the punctuation tokens pycocoevalcap drops.
/// Reimplemented from the documented PTBLexer behaviour (no Java): brackets become -lrb- -rrb-
/// -lsb- -rsb- -lcb- -rcb- (lower-cased after escaping, so they survive the punctuation filter),
/// quotes become `` and '' (dropped), clitics split (n't 's 're 've 'll 'd 'm), "cannot" -> "can
/// not", sentence punctuation split from words, periods kept in abbreviations ("fig.", "e.g.",
/// "no.") and numbers ("3.5"), hyphenated words whole ("t2-weighted"), "…" -> "...", "—" -> "--".

#include <string>

namespace msmedcap::metrics {

/// The tokens of `text`, lower-cased, joined by single spaces, with pycocoevalcap's
/// PUNCTUATIONS removed.
std::string ptb_tokenize(const std::string& text);

}  // namespace msmedcap::metrics
