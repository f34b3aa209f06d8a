#include "server/structured.h"

#include <mutex>
#include <random>
#include <set>
#include <sstream>

#include "grammar/json_schema.h"
#include "grammar/json_schema_ordered.h"
#include "server/api_error.h"

namespace bitnet::server {
namespace {

using ojson = nlohmann::ordered_json;

const char* kCallHead = "<tool_call>{\"name\": \"";
const char* kCallMid = "\", \"arguments\": ";
const char* kCallTail = "}</tool_call>";

// The string at `key`, or "" when it is absent or not a string (never a type error).
std::string string_at(const ojson& o, const char* key) {
  if (!o.is_object()) return "";
  const auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : "";
}

bool valid_tool_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  return true;
}

// A GBNF literal of plain ASCII text (tool names are [A-Za-z0-9_-]).
std::string gbnf_literal(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// The grammars' lines joined, each line once (the shared primitives appear in every one).
std::string join_grammars(const std::vector<std::string>& parts) {
  std::set<std::string> seen;
  std::string out;
  for (const std::string& g : parts) {
    std::istringstream in(g);
    for (std::string line; std::getline(in, line);)
      if (!line.empty() && seen.insert(line).second) out += line + "\n";
  }
  return out;
}

std::string schema_gbnf(const ojson& schema, const std::string& field, const std::string& prefix = "") {
  if (!schema.is_object() && !schema.is_boolean()) throw bad_request("'" + field + "' must be a JSON schema (an object)");
  try {
    return json_schema_to_gbnf(schema, prefix);
  } catch (const SchemaError& e) {
    throw bad_request("'" + field + "': " + e.what());
  }
}

std::vector<ToolDef> read_tools(const ojson& tools) {
  if (!tools.is_array()) throw bad_request("'tools' must be an array");
  std::vector<ToolDef> out;
  std::set<std::string> names;
  for (const ojson& t : tools) {
    if (!t.is_object() || string_at(t, "type") != "function" || !t.contains("function") || !t["function"].is_object())
      throw bad_request("each tool must be {\"type\": \"function\", \"function\": {\"name\", \"description\", \"parameters\"}}");
    const ojson& f = t["function"];
    if (!f.contains("name") || !f["name"].is_string() || !valid_tool_name(f["name"].get<std::string>()))
      throw bad_request("a tool's 'function.name' must be 1 to 64 letters, digits, '_' or '-'");
    ToolDef d;
    d.name = f["name"].get<std::string>();
    if (!names.insert(d.name).second) throw bad_request("two tools are named '" + d.name + "'");
    if (f.contains("description") && !f["description"].is_null()) {
      if (!f["description"].is_string()) throw bad_request("tool '" + d.name + "': 'description' must be a string");
      d.description = f["description"].get<std::string>();
    }
    if (f.contains("strict") && !f["strict"].is_null() && !f["strict"].is_boolean())
      throw bad_request("tool '" + d.name + "': 'strict' must be a boolean");
    d.parameters = f.contains("parameters") && !f["parameters"].is_null() ? f["parameters"] : ojson{{"type", "object"}};
    if (!d.parameters.is_object()) throw bad_request("tool '" + d.name + "': 'parameters' must be a JSON schema object");
    out.push_back(std::move(d));
  }
  return out;
}

// The grammar of one call of any of `tools`, and for auto, the alternative of plain text (which
// may not begin with '<', so that the first character decides).
std::string tools_grammar(const std::vector<ToolDef>& tools, ToolMode mode) {
  std::vector<std::string> parts;
  std::string calls;
  for (size_t i = 0; i < tools.size(); ++i) {
    const std::string prefix = "tool" + std::to_string(i) + "-";
    parts.push_back(schema_gbnf(tools[i].parameters, "tools[" + std::to_string(i) + "].function.parameters", prefix));
    calls += std::string(i ? " | " : "") + gbnf_literal(tools[i].name + kCallMid) + " " + prefix + "root";
  }
  std::string head = "root ::= call" + std::string(mode == ToolMode::Auto ? " | text" : "") + "\n";
  head += "call ::= " + gbnf_literal(kCallHead) + " ( " + calls + " ) " + gbnf_literal(kCallTail) + "\n";
  if (mode == ToolMode::Auto) head += "text ::= [^<] [^\\x00]*\n";
  parts.insert(parts.begin(), head);
  return join_grammars(parts);
}

}  // namespace

Structured read_structured(const ojson& body, bool chat) {
  Structured out;
  std::vector<std::string> sources;
  auto present = [&](const char* key) { return body.contains(key) && !body[key].is_null(); };

  if (present("grammar")) {
    if (!body["grammar"].is_string()) throw bad_request("'grammar' must be a string (GBNF)");
    if (!body["grammar"].get<std::string>().empty()) {
      out.grammar = body["grammar"].get<std::string>();
      sources.push_back("grammar");
    }
  }
  if (present("json_schema")) {
    out.grammar = schema_gbnf(body["json_schema"], "json_schema");
    sources.push_back("json_schema");
  }
  if (present("response_format")) {
    const ojson& rf = body["response_format"];
    if (!rf.is_object()) throw bad_request("'response_format' must be an object");
    if (!rf.contains("type") || !rf["type"].is_string()) throw bad_request("'response_format' needs a 'type' string");
    const std::string type = rf["type"].get<std::string>();
    if (type == "json_object") {
      // llama-server's extension: {"type": "json_object", "schema": {...}}
      out.grammar = rf.contains("schema") && !rf["schema"].is_null() ? schema_gbnf(rf["schema"], "response_format.schema")
                                                                      : json_value_gbnf(true);
      sources.push_back("response_format");
    } else if (type == "json_schema") {
      const ojson* schema = nullptr;
      if (rf.contains("json_schema") && !rf["json_schema"].is_null()) {
        const ojson& js = rf["json_schema"];
        if (!js.is_object()) throw bad_request("'response_format.json_schema' must be an object {name, schema, strict}");
        if (js.contains("name") && !js["name"].is_null() && !js["name"].is_string())
          throw bad_request("'response_format.json_schema.name' must be a string");
        if (js.contains("strict") && !js["strict"].is_null() && !js["strict"].is_boolean())
          throw bad_request("'response_format.json_schema.strict' must be a boolean");
        if (js.contains("schema") && !js["schema"].is_null()) schema = &js["schema"];
      } else if (rf.contains("schema") && !rf["schema"].is_null()) {
        schema = &rf["schema"];
      }
      if (!schema) throw bad_request("'response_format' json_schema needs 'json_schema.schema'");
      out.grammar = schema_gbnf(*schema, "response_format.json_schema.schema");
      sources.push_back("response_format");
    } else if (type != "text") {
      throw bad_request("'response_format' type must be text, json_object or json_schema");
    }
  }

  const bool has_tools = present("tools") && !(body["tools"].is_array() && body["tools"].empty());
  if (present("tool_choice") && !chat) throw bad_request("'tool_choice' is only taken by /v1/chat/completions");
  if (has_tools) {
    if (!chat) throw bad_request("'tools' is only taken by /v1/chat/completions");
    out.tools = read_tools(body["tools"]);
    out.tool_mode = ToolMode::Auto;
    if (present("tool_choice")) {
      const ojson& tc = body["tool_choice"];
      if (tc.is_string()) {
        const std::string v = tc.get<std::string>();
        if (v == "none") out.tool_mode = ToolMode::None;
        else if (v == "auto") out.tool_mode = ToolMode::Auto;
        else if (v == "required") out.tool_mode = ToolMode::Required;
        else throw bad_request("'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\"}}");
      } else if (tc.is_object() && string_at(tc, "type") == "function" && tc.contains("function") && tc["function"].is_object() &&
                 tc["function"].contains("name") && tc["function"]["name"].is_string()) {
        const std::string name = tc["function"]["name"].get<std::string>();
        std::vector<ToolDef> named;
        for (const ToolDef& d : out.tools)
          if (d.name == name) named.push_back(d);
        if (named.empty()) throw bad_request("'tool_choice' names the function '" + name + "', which is not among 'tools'");
        out.tools = std::move(named);
        out.tool_mode = ToolMode::Required;
      } else {
        throw bad_request("'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\"}}");
      }
    }
    if (present("parallel_tool_calls") && !body["parallel_tool_calls"].is_boolean())
      throw bad_request("'parallel_tool_calls' must be a boolean");
    if (out.tool_mode != ToolMode::None) {
      if (!sources.empty())
        throw bad_request("'tools' and '" + sources.front() + "' both constrain the reply: pass one (or tool_choice \"none\")");
      out.grammar = tools_grammar(out.tools, out.tool_mode);
      sources.push_back("tools");
    } else {
      out.tools.clear();
    }
  } else if (present("tool_choice")) {
    const ojson& tc = body["tool_choice"];
    if (!(tc.is_string() && (tc == "none" || tc == "auto")))
      throw bad_request("'tool_choice' " + tc.dump() + " needs 'tools'");
  }
  if (sources.size() > 1)
    throw bad_request("'" + sources[0] + "' and '" + sources[1] + "' both constrain the reply: pass one");
  if (!sources.empty()) out.source = sources.front();
  return out;
}

std::string tools_prompt(const std::vector<ToolDef>& tools) {
  std::string out = "You may call one of these functions. Each is described as JSON, with the JSON schema of its arguments:\n";
  for (const ToolDef& t : tools) {
    ojson d = {{"name", t.name}};
    if (!t.description.empty()) d["description"] = t.description;
    d["parameters"] = t.parameters;
    out += d.dump() + "\n";
  }
  out += "To call a function, reply with only the call, written as:\n";
  out += std::string(kCallHead) + "FUNCTION NAME" + kCallMid + "{ARGUMENTS AS A JSON OBJECT}" + kCallTail;
  return out;
}

std::string tool_call_text(const std::string& name, const std::string& arguments) {
  return kCallHead + name + kCallMid + arguments + kCallTail;
}

std::optional<ToolCall> parse_tool_call(const std::string& text) {
  const std::string head = kCallHead, mid = kCallMid, tail = kCallTail;
  if (text.compare(0, head.size(), head) != 0) return std::nullopt;
  if (text.size() < head.size() + mid.size() + tail.size() || text.compare(text.size() - tail.size(), tail.size(), tail) != 0)
    return std::nullopt;
  const size_t m = text.find(mid, head.size());
  if (m == std::string::npos || m + mid.size() > text.size() - tail.size()) return std::nullopt;
  ToolCall c{text.substr(head.size(), m - head.size()), text.substr(m + mid.size(), text.size() - tail.size() - m - mid.size())};
  if (!valid_tool_name(c.name) || !nlohmann::json::accept(c.arguments)) return std::nullopt;
  return c;
}

ToolCallStream::Delta ToolCallStream::push(const std::string& text) {
  text_ += text;
  return step(false);
}

ToolCallStream::Delta ToolCallStream::finish() { return step(true); }

ToolCallStream::Delta ToolCallStream::step(bool final) {
  Delta d;
  const std::string open(kToolCallOpen), head = kCallHead, mid = kCallMid, tail = kCallTail;
  if (state_ == State::Undecided) {
    if (text_.size() >= open.size() && text_.compare(0, open.size(), open) == 0) state_ = State::Call;
    else if (!final && open.compare(0, text_.size(), text_) == 0) return d;  // may still become a call
    else state_ = State::Content;
  }
  if (state_ == State::Content) {
    d.content = text_.substr(sent_);
    sent_ = text_.size();
    return d;
  }
  if (!named_) {
    const size_t m = text_.size() >= head.size() && text_.compare(0, head.size(), head) == 0 ? text_.find(mid, head.size())
                                                                                             : std::string::npos;
    if (m == std::string::npos) {
      if (final) {  // cut short before the name was complete: the text as it is
        d.content = text_;
        sent_ = text_.size();
        state_ = State::Content;
      }
      return d;
    }
    named_ = true;
    d.call_started = true;
    d.name = text_.substr(head.size(), m - head.size());
    sent_ = m + mid.size();
  }
  size_t end = text_.size();
  if (final) {
    if (end >= sent_ + tail.size() && text_.compare(end - tail.size(), tail.size(), tail) == 0) end -= tail.size();
  } else {
    end = end >= sent_ + tail.size() ? end - tail.size() : sent_;
  }
  if (end > sent_) {
    d.arguments = text_.substr(sent_, end - sent_);
    sent_ = end;
  }
  return d;
}

std::string new_tool_call_id() {
  static std::mutex mutex;
  static std::mt19937_64 rng{std::random_device{}()};
  static const char* chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::lock_guard lock(mutex);
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += chars[rng() % 62];
  return id;
}

}  // namespace bitnet::server
