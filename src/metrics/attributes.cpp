#include "msmedcap/metrics/attributes.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

#include "msmedcap/config/config_io.h"
#include "msmedcap/core/check.h"

namespace msmedcap::metrics {
namespace {

/// Lower-case words: runs of letters and digits ("X-ray" -> "x", "ray").
std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  std::string word;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) {
      word += static_cast<char>(std::tolower(u));
    } else if (!word.empty()) {
      out.push_back(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) out.push_back(std::move(word));
  return out;
}

bool word_matches(const std::string& word, const std::string& keyword) {
  if (word == keyword) return true;
  return word.size() > keyword.size() && word.compare(0, keyword.size(), keyword) == 0 &&
         (word.substr(keyword.size()) == "s" || word.substr(keyword.size()) == "es");
}

bool phrase_at(const std::vector<std::string>& words, size_t at, const std::vector<std::string>& phrase) {
  if (phrase.empty() || at + phrase.size() > words.size()) return false;
  for (size_t k = 0; k < phrase.size(); ++k)
    if (!word_matches(words[at + k], phrase[k])) return false;
  return true;
}

std::vector<std::string> keyword_words(const config::Json& v, const std::string& where) {
  MSMEDCAP_CHECK(v.is_string(), where, ": a keyword must be a string, got ", config::describe_json(v));
  auto words = words_of(v.get<std::string>());
  MSMEDCAP_CHECK(!words.empty(), where, ": the keyword \"", v.get<std::string>(), "\" has no letters or digits");
  return words;
}

const config::Json& object_at(const config::Json& j, const std::string& where) {
  MSMEDCAP_CHECK(j.is_object(), where, ": must be a JSON object, got ", config::describe_json(j));
  return j;
}

std::string string_at(const config::Json& j, const std::string& where) {
  MSMEDCAP_CHECK(j.is_string(), where, ": must be a string, got ", config::describe_json(j));
  return j.get<std::string>();
}

AttributeRule read_rule(const std::string& name, const config::Json& j, const std::string& where,
                        const std::vector<AttributeRule>& before) {
  AttributeRule rule;
  rule.name = name;
  auto known = [&](const std::string& attribute, const std::string& at) {
    const bool found = std::any_of(before.begin(), before.end(), [&](const auto& r) { return r.name == attribute; });
    MSMEDCAP_CHECK(found, at, ": \"", attribute, "\" is not an attribute listed before \"", name, "\"");
  };
  for (auto it = object_at(j, where).begin(); it != j.end(); ++it) {
    const std::string key = it.key(), at = where + "." + key;
    if (key == "values") {
      for (auto v = object_at(it.value(), at).begin(); v != it.value().end(); ++v) {
        const std::string vat = at + "." + v.key();
        MSMEDCAP_CHECK(v.value().is_array() && !v.value().empty(), vat, ": must be a non-empty list of keywords");
        std::vector<std::vector<std::string>> keywords;
        for (const auto& k : v.value()) keywords.push_back(keyword_words(k, vat));
        rule.values.emplace_back(v.key(), std::move(keywords));
      }
    } else if (key == "absent") {
      rule.absent = string_at(it.value(), at);
    } else if (key == "requires") {
      rule.requires_attribute = string_at(it.value(), at);
      known(rule.requires_attribute, at);
    } else if (key == "implied") {
      MSMEDCAP_CHECK(it.value().is_array(), at, ": must be a list of {\"when\": {...}, \"value\": ...}");
      for (size_t i = 0; i < it.value().size(); ++i) {
        const std::string iat = at + "[" + std::to_string(i) + "]";
        const auto& item = object_at(it.value()[i], iat);
        AttributeRule::Implied implied;
        for (auto f = item.begin(); f != item.end(); ++f) {
          if (f.key() == "value") {
            implied.value = string_at(f.value(), iat + ".value");
          } else if (f.key() == "when") {
            for (auto c = object_at(f.value(), iat + ".when").begin(); c != f.value().end(); ++c) {
              known(c.key(), iat + ".when." + c.key());
              implied.when[c.key()] = string_at(c.value(), iat + ".when." + c.key());
            }
          } else {
            MSMEDCAP_FAIL(iat, ".", f.key(), ": unknown key (expected when, value)");
          }
        }
        MSMEDCAP_CHECK(!implied.when.empty() && !implied.value.empty(), iat, ": needs \"when\" and \"value\"");
        rule.implied.push_back(std::move(implied));
      }
    } else {
      MSMEDCAP_FAIL(at, ": unknown key (expected values, absent, requires, implied)");
    }
  }
  MSMEDCAP_CHECK(!rule.values.empty(), where, ".values: an attribute needs at least one value");
  return rule;
}

/// The value of the earliest keyword match of `rule` in `words` that no cue negates, or "".
std::string first_match(const AttributeRule& rule, const std::vector<std::string>& words,
                        const std::vector<bool>& negated) {
  for (size_t at = 0; at < words.size(); ++at) {
    if (negated[at]) continue;
    for (const auto& [value, keywords] : rule.values)
      for (const auto& k : keywords)
        if (phrase_at(words, at, k)) return value;
  }
  return "";
}

}  // namespace

AttributeRules read_attribute_rules(const std::string& path) {
  const config::Json j = config::read_json_file(path);
  AttributeRules rules;
  for (auto it = object_at(j, path).begin(); it != j.end(); ++it) {
    const std::string at = path + ": " + it.key();
    if (it.key() == "attributes") {
      for (auto a = object_at(it.value(), at).begin(); a != it.value().end(); ++a) {
        for (const auto& r : rules.attributes) MSMEDCAP_CHECK(r.name != a.key(), at, ".", a.key(), ": listed twice");
        rules.attributes.push_back(read_rule(a.key(), a.value(), at + "." + a.key(), rules.attributes));
      }
    } else if (it.key() == "negation") {
      for (auto n = object_at(it.value(), at).begin(); n != it.value().end(); ++n) {
        if (n.key() == "cues") {
          MSMEDCAP_CHECK(n.value().is_array(), at, ".cues: must be a list of phrases");
          for (const auto& c : n.value()) rules.negation_cues.push_back(keyword_words(c, at + ".cues"));
        } else if (n.key() == "terminators") {
          MSMEDCAP_CHECK(n.value().is_array(), at, ".terminators: must be a list of words");
          for (const auto& t : n.value()) {
            const auto words = keyword_words(t, at + ".terminators");
            MSMEDCAP_CHECK(words.size() == 1, at, ".terminators: \"", t.get<std::string>(), "\" is not one word");
            rules.negation_terminators.push_back(words[0]);
          }
        } else if (n.key() == "window") {
          MSMEDCAP_CHECK(n.value().is_number_integer() && n.value().get<int64_t>() >= 0, at,
                         ".window: must be a whole number >= 0");
          rules.negation_window = n.value().get<int64_t>();
        } else {
          MSMEDCAP_FAIL(at, ".", n.key(), ": unknown key (expected cues, window, terminators)");
        }
      }
    } else {
      MSMEDCAP_FAIL(at, ": unknown key (expected attributes, negation)");
    }
  }
  MSMEDCAP_CHECK(!rules.attributes.empty(), path, ": attributes: the rule file names no attribute");
  return rules;
}

std::map<std::string, std::string> read_attributes(const AttributeRules& rules, const std::string& caption) {
  const auto words = words_of(caption);
  // A word is negated when a cue ends at most `window` words before it with no terminator
  // between (the words carry no punctuation, so the window and the terminators bound a scope).
  std::vector<bool> negated(words.size(), false);
  for (size_t at = 0; at < words.size(); ++at)
    for (const auto& cue : rules.negation_cues)
      if (phrase_at(words, at, cue)) {
        const size_t from = at + cue.size();
        for (size_t k = from; k < words.size() && k < from + static_cast<size_t>(rules.negation_window); ++k) {
          const auto& t = rules.negation_terminators;
          if (std::find(t.begin(), t.end(), words[k]) != t.end()) break;
          negated[k] = true;
        }
      }
  std::map<std::string, std::string> out;
  for (const auto& rule : rules.attributes) {
    const auto req = std::find_if(rules.attributes.begin(), rules.attributes.end(),
                                  [&](const auto& r) { return r.name == rule.requires_attribute; });
    if (!rule.requires_attribute.empty() && out.at(rule.requires_attribute) == req->absent) {
      out[rule.name] = rule.absent;
      continue;
    }
    std::string value = first_match(rule, words, negated);
    for (const auto& implied : rule.implied) {
      if (!value.empty()) break;
      const bool holds = std::all_of(implied.when.begin(), implied.when.end(),
                                     [&](const auto& c) { return out.at(c.first) == c.second; });
      if (holds) value = implied.value;
    }
    out[rule.name] = value.empty() ? rule.absent : value;
  }
  return out;
}

std::vector<std::string> attribute_metric_names(const AttributeRules& rules) {
  std::vector<std::string> names;
  for (const auto& r : rules.attributes) {
    names.push_back(r.name + "_acc");
    names.push_back(r.name + "_f1");
  }
  return names;
}

void score_attributes(const AttributeRules& rules, const std::map<std::string, std::string>& predictions,
                      const std::map<std::string, std::vector<std::string>>& references,
                      const std::vector<std::string>& ids, Scores& out) {
  std::vector<std::map<std::string, std::string>> pred, ref;
  for (const auto& id : ids) {
    const auto p = predictions.find(id);
    const auto r = references.find(id);
    MSMEDCAP_CHECK(p != predictions.end(), "evaluate --attributes: id ", id, " has no prediction");
    MSMEDCAP_CHECK(r != references.end() && !r->second.empty(), "evaluate --attributes: id ", id, " has no reference");
    pred.push_back(read_attributes(rules, p->second));
    ref.push_back(read_attributes(rules, r->second.front()));
  }
  for (const auto& rule : rules.attributes) {
    const std::string& a = rule.name;
    if (ids.empty()) {
      out.values[a + "_acc"] = std::nullopt;
      out.values[a + "_f1"] = std::nullopt;
      continue;
    }
    int64_t correct = 0;
    std::map<std::string, int64_t> tp, fp, fn;
    std::set<std::string> labels;
    for (size_t i = 0; i < ids.size(); ++i) {
      const std::string &p = pred[i].at(a), &r = ref[i].at(a);
      labels.insert(p);
      labels.insert(r);
      if (p == r) {
        ++correct;
        ++tp[p];
      } else {
        ++fp[p];
        ++fn[r];
      }
    }
    double f1 = 0;
    for (const auto& l : labels) f1 += 2.0 * tp[l] / static_cast<double>(2 * tp[l] + fp[l] + fn[l]);
    out.values[a + "_acc"] = static_cast<double>(correct) / static_cast<double>(ids.size());
    out.values[a + "_f1"] = f1 / static_cast<double>(labels.size());
  }
  out.n = static_cast<int64_t>(ids.size());
}

std::vector<bool> attribute_correct(const AttributeRules& rules, const std::string& attribute,
                                    const std::map<std::string, std::string>& predictions,
                                    const std::map<std::string, std::vector<std::string>>& references,
                                    const std::vector<std::string>& ids) {
  const bool known = std::any_of(rules.attributes.begin(), rules.attributes.end(),
                                 [&](const AttributeRule& r) { return r.name == attribute; });
  MSMEDCAP_CHECK(known, "attribute \"", attribute, "\" is not in the rule file");
  std::vector<bool> out;
  for (const auto& id : ids) {
    const auto p = predictions.find(id);
    const auto r = references.find(id);
    MSMEDCAP_CHECK(p != predictions.end(), "compare: id ", id, " has no prediction");
    MSMEDCAP_CHECK(r != references.end() && !r->second.empty(), "compare: id ", id, " has no reference");
    out.push_back(read_attributes(rules, p->second).at(attribute) ==
                  read_attributes(rules, r->second.front()).at(attribute));
  }
  return out;
}

PairedDifference paired_bootstrap(const std::vector<bool>& a, const std::vector<bool>& b, int64_t samples,
                                  uint64_t seed) {
  MSMEDCAP_CHECK(a.size() == b.size() && !a.empty(), "compare: the two systems need the same items (", a.size(),
                 " and ", b.size(), ")");
  MSMEDCAP_CHECK(samples >= 100, "compare: at least 100 bootstrap samples, got ", samples);
  const auto n = static_cast<int64_t>(a.size());
  PairedDifference d;
  d.n = n;
  for (int64_t i = 0; i < n; ++i) {
    d.a += a[static_cast<size_t>(i)];
    d.b += b[static_cast<size_t>(i)];
  }
  d.a /= static_cast<double>(n);
  d.b /= static_cast<double>(n);
  d.difference = d.b - d.a;
  uint64_t state = seed;  // splitmix64: the same stream everywhere
  auto next = [&state] {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  std::vector<double> diffs;
  diffs.reserve(static_cast<size_t>(samples));
  for (int64_t s = 0; s < samples; ++s) {
    int64_t sum = 0;
    for (int64_t k = 0; k < n; ++k) {
      const auto i = static_cast<size_t>(next() % static_cast<uint64_t>(n));
      sum += static_cast<int64_t>(b[i]) - static_cast<int64_t>(a[i]);
    }
    diffs.push_back(static_cast<double>(sum) / static_cast<double>(n));
  }
  std::sort(diffs.begin(), diffs.end());
  auto at = [&](double q) { return diffs[static_cast<size_t>(std::floor(q * static_cast<double>(samples - 1)))]; };
  d.low = at(0.025);
  d.high = at(0.975);
  return d;
}

}  // namespace msmedcap::metrics
