#include "msmedcap/training/trainer_state.h"

#include <set>

#include "msmedcap/core/check.h"

namespace msmedcap::training {
namespace {

template <class T>
T need(const config::Json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  MSMEDCAP_CHECK(it != j.end(), where, ": no '", key, "'");
  if constexpr (std::is_same_v<T, std::string>) {
    MSMEDCAP_CHECK(it->is_string(), where, ": '", key, "' must be a string, got ", config::describe_json(*it));
  } else if constexpr (std::is_integral_v<T>) {
    MSMEDCAP_CHECK(it->is_number_integer(), where, ": '", key, "' must be an integer, got ",
                   config::describe_json(*it));
  } else {
    MSMEDCAP_CHECK(it->is_number(), where, ": '", key, "' must be a number, got ", config::describe_json(*it));
  }
  return it->get<T>();
}

}  // namespace

config::Json TrainerState::to_json() const {
  return {{"format_version", kFormatVersion},
          {"step", step},
          {"epoch", epoch},
          {"stage", stage},
          {"loader", loader},
          {"skipped_steps", skipped_steps},
          {"best_step", best_step},
          {"best_val_loss", best_val_loss},
          {"loss_scale", loss_scale},
          {"good_scaled_steps", good_scaled_steps},
          {"world_size", world_size}};
}

TrainerState TrainerState::from_json(const config::Json& j, const std::string& where) {
  MSMEDCAP_CHECK(j.is_object(), where, ": expected an object, got ", config::describe_json(j));
  MSMEDCAP_CHECK(j.contains("format_version"), where,
                 ": no format_version; it was written by an msmedcap from before "
                 "checkpoint states were versioned and cannot be resumed by this one (its weights still load)");
  const auto version = need<int64_t>(j, "format_version", where);
  MSMEDCAP_CHECK(version == kFormatVersion, where, ": format_version ", version, " is not one this msmedcap reads (",
                 kFormatVersion, ")", version > kFormatVersion ? "; it was written by a newer msmedcap" : "");
  static const std::set<std::string> keys = {
      "format_version", "step",      "epoch",         "stage",      "loader",
      "skipped_steps",  "best_step", "best_val_loss", "loss_scale", "good_scaled_steps",
      "world_size"};
  for (const auto& [key, value] : j.items()) MSMEDCAP_CHECK(keys.count(key), where, ": unknown key '", key, "'");
  TrainerState s;
  s.step = need<int64_t>(j, "step", where);
  s.epoch = need<int64_t>(j, "epoch", where);
  s.stage = need<std::string>(j, "stage", where);
  MSMEDCAP_CHECK(j.contains("loader") && j.at("loader").is_object(), where, ": 'loader' must be an object");
  s.loader = j.at("loader");
  s.skipped_steps = need<int64_t>(j, "skipped_steps", where);
  s.best_step = need<int64_t>(j, "best_step", where);
  s.best_val_loss = need<double>(j, "best_val_loss", where);
  s.loss_scale = need<double>(j, "loss_scale", where);
  s.good_scaled_steps = need<int64_t>(j, "good_scaled_steps", where);
  s.world_size = need<int64_t>(j, "world_size", where);
  MSMEDCAP_CHECK(s.step >= 0 && s.skipped_steps >= 0 && s.world_size >= 1 && s.best_step >= -1, where,
                 ": step, skipped_steps, best_step or world_size out of range");
  return s;
}

}  // namespace msmedcap::training
