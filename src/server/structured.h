#pragma once
// Structured output and tool calls for the HTTP API (docs/structured-output.md, "Server"): which
// grammar a request asks for (grammar, json_schema, response_format, tools + tool_choice), the
// text that shows the model its tools, and reading the tool call back out of the reply, whole or
// as it streams.
//
// A tool call is written by the model, and forced by the grammar, as exactly
//   <tool_call>{"name": "NAME", "arguments": {...}}</tool_call>
// (one call per reply; the arguments object is valid under the tool's parameters schema).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace bitnet::server {

struct ToolDef {
  std::string name, description;
  nlohmann::ordered_json parameters;  // a JSON schema ({"type": "object"} when not given)
};

// none: no call (and the tools are not shown); auto: text or one call; required: one call (of
// the one named tool, when tool_choice names it).
enum class ToolMode { None, Auto, Required };

struct Structured {
  std::string grammar;   // GBNF text; empty: unconstrained
  std::string source;    // the request field it came from, for error messages
  std::vector<ToolDef> tools;  // the tools shown in the prompt (tool_mode != None)
  ToolMode tool_mode = ToolMode::None;
};

// Reads grammar, json_schema and response_format (every endpoint) and tools / tool_choice (chat
// only: `chat`) from the request. Throws ApiError 400 naming the field and the problem: a bad
// type, a schema the converter refuses (SchemaError), two fields that both constrain the reply.
// The grammar text is not parsed here.
Structured read_structured(const nlohmann::ordered_json& body, bool chat);

// The text the tools add to the system message: each tool as JSON and the call format.
std::string tools_prompt(const std::vector<ToolDef>& tools);

inline constexpr std::string_view kToolCallOpen = "<tool_call>";
inline constexpr std::string_view kToolCallClose = "</tool_call>";
// One call as the model writes it; `arguments` is JSON text.
std::string tool_call_text(const std::string& name, const std::string& arguments);

struct ToolCall {
  std::string name, arguments;  // arguments: JSON text, as generated
};
// The call a whole reply holds, if it is one complete call (else nullopt: plain text, or a call
// cut short by the token limit).
std::optional<ToolCall> parse_tool_call(const std::string& text);

// A reply's text as it streams, split into plain content or one tool call's name and argument
// chunks. Text that could still become "<tool_call>" is held back; so is the tail that could be
// the closing "}</tool_call>".
class ToolCallStream {
 public:
  struct Delta {
    std::string content;    // plain text to send
    bool call_started = false;  // the call's name is known (first call delta: id, type, name)
    std::string name;
    std::string arguments;  // more of the arguments' text
  };
  Delta push(const std::string& text);
  Delta finish();  // at the end of the reply: whatever is still held back
  bool in_call() const { return state_ == State::Call; }

 private:
  enum class State { Undecided, Content, Call };
  Delta step(bool final);
  State state_ = State::Undecided;
  std::string text_;
  size_t sent_ = 0;  // Content: bytes sent; Call: bytes of text_ consumed (head, arguments sent)
  bool named_ = false;
};

// "call_" and 24 random letters and digits.
std::string new_tool_call_id();

}  // namespace bitnet::server
