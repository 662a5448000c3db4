#!/usr/bin/env python3
"""Makes the tokenizer goldens in tests/data/tokenizers/.

HuggingFace transformers is not packaged in Debian 12, so this script is a second, independent
implementation of HF's slow tokenizers, written from the algorithms in transformers'
BertTokenizer (BasicTokenizer + WordpieceTokenizer) and GPT2Tokenizer, with Python's
`unicodedata` and the `regex` module (the same pattern engine GPT2Tokenizer uses):

  * a small WordPiece vocab.txt (BERT layout: [PAD] [unused0] [UNK] [CLS] [SEP] [MASK], characters,
    ##characters, then frequent words of the synthetic captions);
  * a small byte-level BPE vocab.json + merges.txt (OPT layout: <s> <pad> </s> <unk>, 256 byte
    symbols, then merges learned on the captions);
  * goldens.json: for a list of tricky texts, the ids and the decoded text of each tokenizer.

Run with Debian's python3 and python3-regex: /usr/bin/python3 tests/golden/make_tokenizer_golden.py
"""
import collections
import json
import os
import unicodedata

import regex

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "tokenizers")

CORPUS = [
    "Chest radiograph showing a small nodule in the right upper lobe.",
    "Axial CT of the chest demonstrating a large mass in the left lower lobe.",
    "Brain MRI (T2-weighted) shows no acute abnormality.",
    "There's a moderate pleural effusion on the left; the heart isn't enlarged.",
    "Calcification in the right middle zone, 3 mm across.",
    "Cavitating lesion, left upper lobe: consider tuberculosis.",
    "Normal study. No focal consolidation, effusion or pneumothorax.",
    "Multiple nodules are seen in both lungs, the largest measuring 12 mm.",
    "Coronal reformat shows the mass abutting the aorta.",
    "Follow-up CT after 6 months: the lesion's size is unchanged.",
]

TEXTS = [
    "Chest radiograph showing a small nodule in the right upper lobe.",
    "  leading and trailing spaces   ",
    "Tabs\tand\nnewlines\r\nmixed",
    "UPPER case and MiXeD Case",
    "Café, naïve résumé — Ångström façade",
    "T2-weighted MRI: 3.5 mm (axial) [arrow] {brace} <angle>",
    "it's they're we've I'm you'll he'd can't",
    "numbers 123 4567 1,024 0.5mm 10x",
    "中文 字符 and 日本語 mixed",
    "emoji 😀 and symbols ©®™ ± × ÷",
    "unseenwordzzzqqq xylophonic",
    "a" * 120 + " word",
    "[CLS] special [SEP] tokens [MASK] [DEC] in text",
    "</s> <s> <pad> specials for BPE",
    "zero\u200bwidth and nbsp\u00a0space and\u2028line sep",
    "control\x00chars\x07here\ufffd",
    "",
    "   ",
    "Multiple   spaces    between words",
    "'quoted' \"double\" `back`",
    "Ελληνικά и кириллица",
    "ﬁ ligature and ① circled and ½ fraction",
]

# ---------------------------------------------------------------- WordPiece (BertTokenizer)
def bert_is_whitespace(c):
    return c in " \t\n\r" or unicodedata.category(c) == "Zs"

def bert_is_control(c):
    if c in "\t\n\r":
        return False
    return unicodedata.category(c).startswith("C")

def bert_is_punct(c):
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")

def is_cjk(cp):
    return any(a <= cp <= b for a, b in [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
                                        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)])

def basic_tokenize(text):
    out = []
    for c in text:
        cp = ord(c)
        if cp == 0 or cp == 0xFFFD or bert_is_control(c):
            continue
        if bert_is_whitespace(c):
            out.append(" ")
        elif is_cjk(cp):
            out.append(" " + c + " ")
        else:
            out.append(c)
    text = unicodedata.normalize("NFC", "".join(out))
    tokens = []
    for word in text.split():
        word = word.lower()
        word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
        piece = ""
        for c in word:
            if bert_is_punct(c):
                if piece:
                    tokens.append(piece)
                piece = ""
                tokens.append(c)
            else:
                piece += c
        if piece:
            tokens.append(piece)
    return tokens

def wordpiece(word, vocab):
    if len(word) > 100:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        end, found = len(word), None
        while start < end:
            sub = word[start:end]
            if start > 0:
                sub = "##" + sub
            if sub in vocab:
                found = sub
                break
            end -= 1
        if found is None:
            return ["[UNK]"]
        pieces.append(found)
        start = end
    return pieces

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]

def split_specials(text, specials):
    parts, i, start = [], 0, 0
    while i < len(text):
        hit = max((s for s in specials if text.startswith(s, i)), key=len, default=None)
        if hit is None:
            i += 1
            continue
        if i > start:
            parts.append((text[start:i], False))
        parts.append((hit, True))
        i += len(hit)
        start = i
    if start < len(text):
        parts.append((text[start:], False))
    return parts

def bert_encode(text, vocab):
    ids = [vocab["[CLS]"]]
    for part, special in split_specials(text, BERT_SPECIALS):
        if special:
            ids.append(vocab[part])
            continue
        for w in basic_tokenize(part):
            ids.extend(vocab.get(t, vocab["[UNK]"]) for t in wordpiece(w, vocab))
    ids.append(vocab["[SEP]"])
    return ids

def make_wordpiece_vocab():
    tokens = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = collections.Counter()
    words = collections.Counter()
    for line in CORPUS + TEXTS[:8]:
        for w in basic_tokenize(line):
            words[w] += 1
            chars.update(w)
    for c in sorted(chars):
        tokens.append(c)
    for c in sorted(chars):
        tokens.append("##" + c)
    for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))[:60]:
        if w not in tokens:
            tokens.append(w)
    for piece in ["##s", "##ed", "##ing", "##ule", "##ation", "rad", "##io", "##graph", "cafe", "nai", "##ve"]:
        if piece not in tokens:
            tokens.append(piece)
    return tokens

# ---------------------------------------------------------------- byte-level BPE (GPT2Tokenizer)
PAT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))

B2U = bytes_to_unicode()
U2B = {v: k for k, v in B2U.items()}

def bpe_word(word, ranks):
    parts = list(word)
    while len(parts) > 1:
        pairs = [(ranks.get((parts[k], parts[k + 1]), None), k) for k in range(len(parts) - 1)]
        pairs = [p for p in pairs if p[0] is not None]
        if not pairs:
            break
        best = min(pairs)[0]
        a, b = [(x, y) for (x, y), r in ranks.items() if r == best][0]
        merged, k = [], 0
        while k < len(parts):
            if k + 1 < len(parts) and parts[k] == a and parts[k + 1] == b:
                merged.append(a + b)
                k += 2
            else:
                merged.append(parts[k])
                k += 1
        parts = merged
    return parts

BPE_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]

def bpe_tokenize(text, ranks):
    out = []
    for part, special in split_specials(text, BPE_SPECIALS):
        if special:
            out.append(part)
            continue
        for pre in PAT.findall(part):
            out.extend(bpe_word("".join(B2U[b] for b in pre.encode("utf-8")), ranks))
    return out

def bpe_encode(text, vocab, ranks):
    return [vocab["</s>"]] + [vocab.get(t, vocab["<unk>"]) for t in bpe_tokenize(text, ranks)]

def bpe_decode(ids, inv):
    toks = [inv[i] for i in ids if inv[i] not in BPE_SPECIALS]
    return bytearray(U2B[c] for c in "".join(toks)).decode("utf-8", errors="replace")

def learn_merges(n_merges):
    words = collections.Counter()
    for line in CORPUS + TEXTS[:8]:
        for pre in PAT.findall(line):
            words[tuple(B2U[b] for b in pre.encode("utf-8"))] += 1
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, n in words.items():
            for k in range(len(w) - 1):
                pairs[(w[k], w[k + 1])] += n
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        new = collections.Counter()
        for w, n in words.items():
            out, k = [], 0
            while k < len(w):
                if k + 1 < len(w) and (w[k], w[k + 1]) == best:
                    out.append(w[k] + w[k + 1])
                    k += 2
                else:
                    out.append(w[k])
                    k += 1
            new[tuple(out)] += n
        words = new
    return merges

def main():
    os.makedirs(OUT, exist_ok=True)
    wp = make_wordpiece_vocab()
    os.makedirs(os.path.join(OUT, "bert"), exist_ok=True)
    with open(os.path.join(OUT, "bert", "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(wp) + "\n")
    wp_vocab = {t: i for i, t in enumerate(wp)}
    wp_vocab["[DEC]"] = len(wp)  # tokenizer.add_special_tokens({"bos_token": "[DEC]"})

    merges = learn_merges(300)
    vocab = {t: i for i, t in enumerate(BPE_SPECIALS)}
    for b in range(256):
        vocab.setdefault(B2U[b], len(vocab))
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    ranks = {m: r for r, m in enumerate(merges)}
    os.makedirs(os.path.join(OUT, "opt"), exist_ok=True)
    with open(os.path.join(OUT, "opt", "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(OUT, "opt", "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    inv = {i: t for t, i in vocab.items()}

    goldens = []
    for text in TEXTS:
        bert_ids = bert_encode(text, wp_vocab)
        opt_ids = bpe_encode(text, vocab, ranks)
        goldens.append({"text": text, "wordpiece": bert_ids, "bpe": opt_ids,
                        "bpe_pretokens": PAT.findall(text), "bpe_decoded": bpe_decode(opt_ids, inv)})
    with open(os.path.join(OUT, "goldens.json"), "w", encoding="utf-8") as f:
        json.dump(goldens, f, ensure_ascii=False, indent=1)
    print(f"wordpiece vocab {len(wp)}, bpe vocab {len(vocab)} ({len(merges)} merges), {len(goldens)} texts -> {OUT}")

if __name__ == "__main__":
    main()
