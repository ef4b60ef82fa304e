// A validator for the subset of JSON Schema draft-07 that dynasim's schemas use
// (scenarios/scenario.schema.json, docs/summary.schema.json). It refuses any keyword it does not
// implement, anywhere in a schema, so a schema cannot rely on a check the tests would silently
// skip. Shared by the tests that keep those schemas in step with the code.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace dynasim::testing_support {

using json = nlohmann::json;

// Keywords that only annotate: no validation effect.
inline const std::set<std::string> kAnnotations = {
    "$schema", "$id", "title", "description", "default", "examples", "$comment", "definitions"};
// Keywords the validator implements.
inline const std::set<std::string> kValidations = {
    "$ref",     "type",     "enum",       "const",        "pattern",
    "minimum",  "maximum",  "properties", "required",     "items",
    "minItems", "maxItems", "not",        "dependencies", "additionalProperties"};

class SchemaValidator {
 public:
  // REQUIRES `root` to outlive the validator. Throws std::logic_error for a keyword the
  // validator does not implement, anywhere in the schema.
  explicit SchemaValidator(const json& root) : root_(root) { check_keywords(root_, "#"); }

  // Every violation as "<path>: <what>"; empty when `instance` is valid.
  std::vector<std::string> validate(const json& instance) const {
    std::vector<std::string> errors;
    check(root_, instance, "$", errors);
    return errors;
  }

  // Follows "$ref": "#/definitions/..." (a chain of them).
  const json& resolve(const json& schema) const {
    const json* current = &schema;
    while (current->is_object() && current->contains("$ref")) {
      const std::string ref = current->at("$ref").get<std::string>();
      if (ref.empty() || ref[0] != '#') throw std::logic_error("only local $ref: " + ref);
      current = &root_.at(json::json_pointer(ref.substr(1)));
    }
    return *current;
  }

 private:
  static void check_keywords(const json& schema, const std::string& where) {
    if (!schema.is_object()) throw std::logic_error(where + ": a schema must be an object");
    for (const auto& [keyword, value] : schema.items()) {
      if (!kAnnotations.contains(keyword) && !kValidations.contains(keyword)) {
        throw std::logic_error(where + ": keyword \"" + keyword + "\" is not implemented");
      }
      // Draft-07 ignores the siblings of "$ref": only annotations may stand beside it.
      if (schema.contains("$ref") && keyword != "$ref" && !kAnnotations.contains(keyword)) {
        throw std::logic_error(where + ": \"" + keyword + "\" beside \"$ref\" is ignored");
      }
    }
    const auto sub = [&](const std::string& key, const json& node) {
      check_keywords(node, where + "/" + key);
    };
    for (const char* key : {"properties", "definitions"}) {
      if (schema.contains(key)) {
        for (const auto& [name, node] : schema.at(key).items())
          sub(std::string(key) + "/" + name, node);
      }
    }
    for (const char* key : {"items", "not"}) {
      if (schema.contains(key)) sub(key, schema.at(key));
    }
    if (schema.contains("additionalProperties") &&
        !schema.at("additionalProperties").is_boolean()) {
      sub("additionalProperties", schema.at("additionalProperties"));
    }
    if (schema.contains("dependencies")) {
      for (const auto& [name, node] : schema.at("dependencies").items()) {
        if (!node.is_array()) sub("dependencies/" + name, node);
      }
    }
  }

  static bool has_type(const json& value, const std::string& type) {
    if (type == "object") return value.is_object();
    if (type == "array") return value.is_array();
    if (type == "string") return value.is_string();
    if (type == "boolean") return value.is_boolean();
    if (type == "null") return value.is_null();
    if (type == "number") return value.is_number();
    if (type == "integer") {
      if (value.is_number_integer()) return true;
      if (!value.is_number_float()) return false;
      const double number = value.get<double>();
      return std::isfinite(number) && number == std::trunc(number);
    }
    throw std::logic_error("unknown type " + type);
  }

  bool matches(const std::string& pattern, const std::string& text) const {
    auto found = regexes_.find(pattern);
    if (found == regexes_.end()) {
      found = regexes_.emplace(pattern, std::regex(pattern, std::regex::ECMAScript)).first;
    }
    return std::regex_search(text, found->second);  // JSON Schema patterns are not anchored
  }

  void check(const json& schema, const json& value, const std::string& path,
             std::vector<std::string>& errors) const {
    if (schema.contains("$ref")) {
      check(resolve(schema), value, path, errors);
      return;
    }
    const auto fail = [&](const std::string& what) { errors.push_back(path + ": " + what); };
    if (schema.contains("type")) {
      const json& type = schema.at("type");
      bool any = false;
      if (type.is_string()) {
        any = has_type(value, type.get<std::string>());
      } else {
        for (const json& each : type) any = any || has_type(value, each.get<std::string>());
      }
      if (!any) {
        fail("not of type " + type.dump());
        return;
      }
    }
    if (schema.contains("enum")) {
      const json& allowed = schema.at("enum");
      if (std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
        fail(value.dump() + " is not one of " + allowed.dump());
      }
    }
    if (schema.contains("const") && schema.at("const") != value)
      fail("not " + schema.at("const").dump());
    if (value.is_string() && schema.contains("pattern") &&
        !matches(schema.at("pattern").get<std::string>(), value.get<std::string>())) {
      fail(value.dump() + " does not match " + schema.at("pattern").get<std::string>());
    }
    if (value.is_number()) {
      const double number = value.get<double>();
      if (schema.contains("minimum") && number < schema.at("minimum").get<double>()) {
        fail(value.dump() + " is below the minimum " + schema.at("minimum").dump());
      }
      if (schema.contains("maximum") && number > schema.at("maximum").get<double>()) {
        fail(value.dump() + " is above the maximum " + schema.at("maximum").dump());
      }
    }
    if (value.is_array()) {
      if (schema.contains("minItems") && value.size() < schema.at("minItems").get<size_t>()) {
        fail("fewer than " + schema.at("minItems").dump() + " items");
      }
      if (schema.contains("maxItems") && value.size() > schema.at("maxItems").get<size_t>()) {
        fail("more than " + schema.at("maxItems").dump() + " items");
      }
      if (schema.contains("items")) {
        for (size_t i = 0; i < value.size(); ++i) {
          check(schema.at("items"), value[i], path + "[" + std::to_string(i) + "]", errors);
        }
      }
    }
    if (value.is_object()) {
      const json empty = json::object();
      const json& properties = schema.contains("properties") ? schema.at("properties") : empty;
      for (const auto& [key, item] : value.items()) {
        if (properties.contains(key)) {
          check(properties.at(key), item, path + "." + key, errors);
        } else if (schema.contains("additionalProperties")) {
          const json& additional = schema.at("additionalProperties");
          if (additional.is_boolean()) {
            if (!additional.get<bool>()) {
              errors.push_back(path + "." + key + ": an unknown field (additionalProperties)");
            }
          } else {
            check(additional, item, path + "." + key, errors);
          }
        }
      }
      if (schema.contains("required")) {
        for (const json& key : schema.at("required")) {
          if (!value.contains(key.get<std::string>())) {
            errors.push_back(path + "." + key.get<std::string>() + ": a required field is missing");
          }
        }
      }
      if (schema.contains("dependencies")) {
        for (const auto& [key, dependency] : schema.at("dependencies").items()) {
          if (!value.contains(key)) continue;
          if (dependency.is_array()) {
            for (const json& needed : dependency) {
              if (!value.contains(needed.get<std::string>())) {
                fail("\"" + key + "\" needs \"" + needed.get<std::string>() + "\"");
              }
            }
          } else {
            check(dependency, value, path, errors);
          }
        }
      }
    }
    if (schema.contains("not")) {
      std::vector<std::string> inner;
      check(schema.at("not"), value, path, inner);
      if (inner.empty()) fail("matches a schema it must not match: " + schema.at("not").dump());
    }
  }

  const json& root_;
  mutable std::map<std::string, std::regex> regexes_;
};

}  // namespace dynasim::testing_support
