#pragma once
/// Field reflection for typed configs. A config section is a plain struct with defaults and a
///   template <class V> void visit(V& v) { v("name", name, "one-line doc"); ... }
/// member; the visitors below turn it into JSON, read it back from JSON with full-path errors
/// (unknown keys name the nearest valid key), and list its keys for `msmedcap config --keys`.

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "msmedcap/core/check.h"

namespace msmedcap::config {

/// JSON value with key order preserved (dumps follow the struct's field order).
using Json = nlohmann::ordered_json;

/// The valid key closest to `key` by edit distance ("" when none is close).
std::string nearest_key(const std::string& key, const std::vector<std::string>& candidates);

/// One-line description of a JSON value's type and content for error messages.
std::string describe_json(const Json& j);

namespace detail {
template <class T, class = void>
struct is_section : std::false_type {};
struct NullVisitor {
  template <class U>
  void operator()(const char*, U&, const char*) {}
};
template <class T>
struct is_section<T, std::void_t<decltype(std::declval<T&>().visit(std::declval<NullVisitor&>()))>> : std::true_type {};
template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};

inline std::string join_path(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}
}  // namespace detail

/// Writes a section (or value) as JSON, fields in declaration order.
template <class T>
Json to_json(const T& value);

/// Reads `j` into `out`, which holds the defaults; keys absent from `j` keep them. Throws
/// msmedcap::Error "ORIGIN: PATH: problem" (origin = file or override) on unknown keys, wrong
/// types or out-of-range integers.
template <class T>
void from_json(const Json& j, T& out, const std::string& path, const std::string& origin);

namespace detail {

struct Writer {
  Json* out;
  template <class U>
  void operator()(const char* name, const U& field, const char*) {
    (*out)[name] = to_json(field);
  }
};

inline std::string where(const std::string& origin, const std::string& path) {
  return (origin.empty() ? std::string() : origin + ": ") + (path.empty() ? "(root)" : path);
}

struct Reader {
  const Json* in;
  std::string path;
  std::string origin;
  std::vector<std::string> names;
  template <class U>
  void operator()(const char* name, U& field, const char*) {
    names.emplace_back(name);
    auto it = in->find(name);
    if (it != in->end()) from_json(*it, field, join_path(path, name), origin);
  }
};

struct KeyLister {
  std::vector<std::pair<std::string, std::string>>* out;  // (path, doc)
  std::string path;
  template <class U>
  void operator()(const char* name, U& field, const char* doc);
};

}  // namespace detail

template <class T>
Json to_json(const T& value) {
  if constexpr (detail::is_section<T>::value) {
    Json j = Json::object();
    detail::Writer w{&j};
    const_cast<T&>(value).visit(w);
    return j;
  } else if constexpr (detail::is_vector<T>::value) {
    Json j = Json::array();
    for (const auto& item : value) j.push_back(to_json(item));
    return j;
  } else {
    return Json(value);
  }
}

template <class T>
void from_json(const Json& j, T& out, const std::string& path, const std::string& origin) {
  using detail::where;
  if constexpr (detail::is_section<T>::value) {
    MSMEDCAP_CHECK(j.is_object(), where(origin, path), ": expected an object, got ", describe_json(j));
    detail::Reader r{&j, path, origin, {}};
    out.visit(r);
    for (const auto& item : j.items()) {
      const std::string& key = item.key();
      if (std::find(r.names.begin(), r.names.end(), key) != r.names.end()) continue;
      const std::string hint = nearest_key(key, r.names);
      MSMEDCAP_FAIL(origin.empty() ? "" : origin + ": ", "unknown key '", detail::join_path(path, key), "'",
                    hint.empty() ? std::string() : " (did you mean '" + detail::join_path(path, hint) + "'?)");
    }
  } else if constexpr (detail::is_vector<T>::value) {
    MSMEDCAP_CHECK(j.is_array(), where(origin, path), ": expected an array, got ", describe_json(j));
    T result;
    result.reserve(j.size());
    for (size_t i = 0; i < j.size(); ++i) {
      typename T::value_type item{};
      from_json(j[i], item, path + "[" + std::to_string(i) + "]", origin);
      result.push_back(std::move(item));
    }
    out = std::move(result);
  } else if constexpr (std::is_same_v<T, bool>) {
    MSMEDCAP_CHECK(j.is_boolean(), where(origin, path), ": expected true or false, got ", describe_json(j));
    out = j.template get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    MSMEDCAP_CHECK(j.is_number_integer(), where(origin, path), ": expected an integer, got ", describe_json(j));
    if (j.is_number_unsigned()) {
      const auto v = j.template get<uint64_t>();
      MSMEDCAP_CHECK(v <= static_cast<uint64_t>(std::numeric_limits<T>::max()), where(origin, path), ": integer ", v,
                     " out of range");
      out = static_cast<T>(v);
    } else {
      const auto v = j.template get<int64_t>();
      MSMEDCAP_CHECK(v >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
                         v <= static_cast<int64_t>(std::numeric_limits<T>::max()),
                     where(origin, path), ": integer ", v, " out of range");
      out = static_cast<T>(v);
    }
  } else if constexpr (std::is_floating_point_v<T>) {
    MSMEDCAP_CHECK(j.is_number(), where(origin, path), ": expected a number, got ", describe_json(j));
    out = j.template get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    MSMEDCAP_CHECK(j.is_string(), where(origin, path), ": expected a string, got ", describe_json(j));
    out = j.template get<std::string>();
  } else {
    static_assert(sizeof(T) == 0, "unsupported config field type");
  }
}

template <class U>
void detail::KeyLister::operator()(const char* name, U& field, const char* doc) {
  const std::string p = join_path(path, name);
  if constexpr (is_section<U>::value) {
    KeyLister inner{out, p};
    field.visit(inner);
  } else {
    out->emplace_back(p, doc);
  }
}

/// Every leaf key of a section with its doc line, in declaration order.
template <class T>
std::vector<std::pair<std::string, std::string>> list_keys(T& section) {
  std::vector<std::pair<std::string, std::string>> out;
  detail::KeyLister lister{&out, ""};
  section.visit(lister);
  return out;
}

}  // namespace msmedcap::config
