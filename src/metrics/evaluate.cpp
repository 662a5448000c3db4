#include "msmedcap/metrics/evaluate.h"

#include "msmedcap/config/fields.h"
#include "msmedcap/core/check.h"
#include "msmedcap/metrics/meteor.h"
#include "msmedcap/metrics/ptb_tokenizer.h"
#include "msmedcap/metrics/scorer.h"

namespace msmedcap::metrics {
namespace {

std::string id_of(const config::Json& j, const std::string& where) {
  MSMEDCAP_CHECK(j.contains("id"), where, ": no \"id\"");
  const auto& id = j.at("id");
  MSMEDCAP_CHECK(id.is_string() || id.is_number_integer(), where, ": \"id\" must be a string or an integer, got ",
                 config::describe_json(id));
  return id.is_string() ? id.get<std::string>() : id.dump();
}

/// The metrics' budget: METEOR's alignment search grows faster than linearly with a caption's
/// length (a 100000-word prediction passed 23 GiB), so longer captions are refused by line.
constexpr int64_t kMaxCaptionWords = 1000;

std::string text_of(const config::Json& v, const std::string& where, const char* field) {
  MSMEDCAP_CHECK(v.is_string(), where, ": \"", field, "\" must be a string, got ", config::describe_json(v));
  const std::string& text = v.get_ref<const std::string&>();
  int64_t words = 0;
  bool in_word = false;
  for (const char c : text) {
    const bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r';
    words += !space && !in_word;
    in_word = !space;
  }
  MSMEDCAP_CHECK(words <= kMaxCaptionWords, where, ": \"", field, "\" has ", words, " words, more than the metrics' ",
                 kMaxCaptionWords, " (docs/RELIABILITY.md)");
  return text;
}

/// The first few ids of `ids`, for an error message.
std::string first_ids(const std::vector<std::string>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size() && i < 5; ++i) s += (i ? ", " : "") + ids[i];
  if (ids.size() > 5) s += ", ...";
  return s;
}

}  // namespace

std::map<std::string, std::string> read_predictions(const std::string& path) {
  std::map<std::string, std::string> out;
  config::for_each_jsonl_object(path, [&](const config::Json& j, const std::string& where) {
    const std::string id = id_of(j, where);
    MSMEDCAP_CHECK(j.contains("caption"), where, ": no \"caption\"");
    MSMEDCAP_CHECK(out.emplace(id, text_of(j.at("caption"), where, "caption")).second, where, ": id ", id,
                   " predicted twice");
  });
  return out;
}

std::map<std::string, std::vector<std::string>> read_references(const std::string& path) {
  std::map<std::string, std::vector<std::string>> out;
  config::for_each_jsonl_object(path, [&](const config::Json& j, const std::string& where) {
    const std::string id = id_of(j, where);
    auto& refs = out[id];
    if (j.contains("captions")) {
      MSMEDCAP_CHECK(j.at("captions").is_array() && !j.at("captions").empty(), where,
                     ": \"captions\" must be a non-empty list of strings");
      for (const auto& c : j.at("captions")) refs.push_back(text_of(c, where, "captions"));
    } else {
      MSMEDCAP_CHECK(j.contains("caption"), where, ": no \"captions\" or \"caption\"");
      refs.push_back(text_of(j.at("caption"), where, "caption"));
    }
  });
  return out;
}

std::map<std::string, std::string> read_reference_field(const std::string& path, const std::string& field) {
  std::map<std::string, std::string> out;
  config::for_each_jsonl_object(path, [&](const config::Json& j, const std::string& where) {
    const std::string id = id_of(j, where);
    std::string value = "(none)";
    if (j.contains(field)) {
      const auto& v = j.at(field);
      MSMEDCAP_CHECK(v.is_string() || v.is_number() || v.is_boolean() || v.is_null(), where, ": \"", field,
                     "\" must be a string, number or boolean to group by, got ", v.dump());
      if (v.is_string() && !v.get<std::string>().empty()) value = v.get<std::string>();
      if (v.is_number() || v.is_boolean()) value = v.dump();
    }
    const auto [it, added] = out.emplace(id, value);
    MSMEDCAP_CHECK(added || it->second == value, where, ": id ", id, " has \"", field, "\" ", value, " here and ",
                   it->second, " on an earlier line");
  });
  return out;
}

std::map<std::string, Evaluation> evaluate_groups(const std::map<std::string, std::string>& predictions,
                                                  const std::map<std::string, std::vector<std::string>>& references,
                                                  const std::map<std::string, std::string>& group_of,
                                                  const Meteor* meteor) {
  std::map<std::string, std::map<std::string, std::string>> preds;
  std::map<std::string, std::map<std::string, std::vector<std::string>>> refs;
  for (const auto& [id, caption] : predictions) {
    const auto g = group_of.find(id);
    const std::string group = g == group_of.end() ? "(none)" : g->second;
    preds[group][id] = caption;
    const auto r = references.find(id);
    MSMEDCAP_CHECK(r != references.end(), "evaluate: predicted id ", id, " has no reference");
    refs[group][id] = r->second;
  }
  std::map<std::string, Evaluation> out;
  for (const auto& [group, p] : preds) out[group] = evaluate(p, refs.at(group), meteor);
  return out;
}

Evaluation evaluate(const std::map<std::string, std::string>& predictions,
                    const std::map<std::string, std::vector<std::string>>& references, const Meteor* meteor) {
  std::vector<std::string> only_pred, only_ref;
  for (const auto& [id, c] : predictions) {
    if (!references.count(id)) only_pred.push_back(id);
  }
  for (const auto& [id, r] : references) {
    if (!predictions.count(id)) only_ref.push_back(id);
  }
  MSMEDCAP_CHECK(only_pred.empty(), "evaluate: ", only_pred.size(),
                 " predicted ids have no reference: ", first_ids(only_pred));
  MSMEDCAP_CHECK(only_ref.empty(), "evaluate: ", only_ref.size(),
                 " referenced ids have no prediction: ", first_ids(only_ref));
  MSMEDCAP_CHECK(!predictions.empty(), "evaluate: no predictions");
  Evaluation ev;
  std::vector<Item> items;
  for (const auto& [id, caption] : predictions) {
    Item item;
    item.hyp = ptb_tokenize(caption);
    for (const auto& r : references.at(id)) item.refs.push_back(ptb_tokenize(r));
    items.push_back(std::move(item));
    ev.ids.push_back(id);
  }
  const auto b = bleu(items);
  for (int k = 0; k < 4; ++k) {
    const std::string name = "Bleu_" + std::to_string(k + 1);
    ev.corpus[name] = b[static_cast<size_t>(k)].corpus;
    ev.per_item[name] = b[static_cast<size_t>(k)].per_item;
  }
  if (meteor) {
    const auto m = meteor->score(items);
    ev.corpus["METEOR"] = m.corpus;
    ev.per_item["METEOR"] = m.per_item;
  }
  const auto r = rouge_l(items);
  ev.corpus["ROUGE_L"] = r.corpus;
  ev.per_item["ROUGE_L"] = r.per_item;
  const auto c = cider_d(items);
  ev.corpus["CIDEr"] = c.corpus;
  ev.per_item["CIDEr"] = c.per_item;
  return ev;
}

const std::vector<std::string>& metric_names() {
  static const std::vector<std::string> names = {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"};
  return names;
}

Scores scores_of(const Evaluation& e) {
  Scores s;
  for (const auto& name : metric_names()) {
    const auto it = e.corpus.find(name);
    s.values[name] = it == e.corpus.end() ? std::nullopt : std::optional<double>(it->second);
  }
  s.n = static_cast<int64_t>(e.ids.size());
  return s;
}

config::Json to_json(const Scores& s) {
  config::Json j = config::Json::object();
  for (const auto& [name, value] : s.values) j[name] = value ? config::Json(*value) : config::Json(nullptr);
  j["n"] = s.n;
  return j;
}

config::Json to_json(const EvaluationSummary& s) {
  config::Json j = to_json(s.corpus);
  for (const auto& [field, groups] : s.groups)
    for (const auto& [group, scores] : groups) j["groups"][field][group] = to_json(scores);
  return j;
}

namespace {

/// The scores object at JSON pointer `at` ("" for the top level, whose "groups" is read apart).
Scores scores_from_json(const config::Json& j, const std::string& where, const std::string& at) {
  MSMEDCAP_CHECK(j.is_object(), where, ": ",
                 at.empty() ? std::string("expected the JSON object `msmedcap evaluate --json` writes")
                            : at + " is not an object");
  Scores s;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string key = at + "/" + it.key();
    if (at.empty() && it.key() == "groups") continue;
    if (it.key() == "n") {
      MSMEDCAP_CHECK(it->is_number_integer() && it->get<int64_t>() >= 0, where, ": ", key, " is not a count");
      s.n = it->get<int64_t>();
      continue;
    }
    MSMEDCAP_CHECK(it->is_number() || it->is_null(), where, ": ", key, " is not a score (a number or null)");
    s.values[it.key()] = it->is_null() ? std::nullopt : std::optional<double>(it->get<double>());
  }
  return s;
}

}  // namespace

EvaluationSummary evaluation_summary_from_json(const config::Json& j, const std::string& where) {
  EvaluationSummary s;
  s.corpus = scores_from_json(j, where, "");
  if (!j.contains("groups")) return s;
  const config::Json& groups = j.at("groups");
  MSMEDCAP_CHECK(groups.is_object(), where, ": /groups is not an object");
  for (auto f = groups.begin(); f != groups.end(); ++f) {
    MSMEDCAP_CHECK(f->is_object(), where, ": /groups/", f.key(), " is not an object");
    for (auto g = f->begin(); g != f->end(); ++g)
      s.groups[f.key()][g.key()] = scores_from_json(*g, where, "/groups/" + f.key() + "/" + g.key());
  }
  return s;
}

}  // namespace msmedcap::metrics
