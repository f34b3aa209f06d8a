// Structured output and tool calls over HTTP (docs/structured-output.md, "Server"): grammar,
// json_schema and response_format constrain the reply on every endpoint, streamed and not; tools
// give OpenAI tool_calls; every bad field is a 400 naming it. The test model has random weights:
// only the grammar makes its output JSON.
#include <set>

#include "process_runner.h"
#include "server_process.h"

namespace bitnet::testing {
namespace {

// name: at most 8 characters, n: 1–9, tags: up to two of "a"/"b"; nothing else.
const json kSchema = json::parse(R"({"type":"object","properties":{"name":{"type":"string","maxLength":8},
    "n":{"type":"integer","minimum":1,"maximum":9},"tags":{"type":"array","items":{"enum":["a","b"]},"maxItems":2}},
    "required":["name","n","tags"],"additionalProperties":false})");

void expect_matches_schema(const std::string& text) {
  SCOPED_TRACE(text);
  const json v = json::parse(text, nullptr, false);
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.size(), 3u);
  ASSERT_TRUE(v["name"].is_string());
  // at most 8 characters (code points) between the quotes
  size_t chars = 0;
  for (unsigned char c : v["name"].get<std::string>()) chars += (c & 0xC0) != 0x80;
  EXPECT_LE(chars, 8u);
  ASSERT_TRUE(v["n"].is_number_integer());
  EXPECT_GE(v["n"].get<int>(), 1);
  EXPECT_LE(v["n"].get<int>(), 9);
  ASSERT_TRUE(v["tags"].is_array());
  EXPECT_LE(v["tags"].size(), 2u);
  for (const json& t : v["tags"]) EXPECT_TRUE(t == "a" || t == "b") << t.dump();
}

std::vector<json> chunks(const StreamResult& s) {
  std::vector<json> out;
  for (const std::string& d : s.data)
    if (d != "[DONE]") out.push_back(json::parse(d));
  return out;
}

json chat(const json& extra) {
  json b = {{"messages", {{{"role", "user"}, {"content", "Hello"}}}}, {"max_tokens", 400}, {"seed", 7}};
  b.update(extra);
  return b;
}

TEST(StructuredOutput, JsonSchemaOnEveryEndpointStreamedAndNot) {
  ServerProcess server({"-c", "2048"});
  auto cli = server.client();
  const json rf = {{"type", "json_schema"}, {"json_schema", {{"name", "thing"}, {"schema", kSchema}, {"strict", true}}}};
  struct Variant {
    const char* path;
    json body;
  };
  const std::vector<Variant> variants = {
      {"/completion", {{"prompt", "Hello"}, {"n_predict", 400}, {"seed", 3}, {"json_schema", kSchema}}},
      {"/completion", {{"prompt", "Hello"}, {"n_predict", 400}, {"seed", 4}, {"response_format", rf}}},
      {"/v1/completions", {{"prompt", "Hello"}, {"max_tokens", 400}, {"seed", 5}, {"response_format", rf}}},
      {"/v1/chat/completions", chat({{"response_format", rf}})},
      {"/v1/chat/completions", chat({{"response_format", {{"type", "json_object"}, {"schema", kSchema}}}, {"seed", 8}})},
      {"/v1/chat/completions", chat({{"json_schema", kSchema}, {"seed", 9}})},
  };
  for (const Variant& v : variants) {
    SCOPED_TRACE(std::string(v.path) + " " + v.body.dump());
    int status = 0;
    const json r = post_json(cli, v.path, v.body, &status);
    ASSERT_EQ(status, 200) << r.dump();
    const std::string path = v.path;
    const std::string text = path == "/completion"       ? r["content"].get<std::string>()
                             : path == "/v1/completions" ? r["choices"][0]["text"].get<std::string>()
                                                         : r["choices"][0]["message"]["content"].get<std::string>();
    expect_matches_schema(text);
    if (path == "/completion") EXPECT_EQ(r["stop_type"], "eos");  // the grammar ended it
    else EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");

    json body = v.body;
    body["stream"] = true;
    const StreamResult s = stream_post(server.port(), v.path, body);
    ASSERT_EQ(s.status, 200) << s.body;
    std::string streamed;
    for (const json& c : chunks(s)) {
      if (path == "/completion") streamed += c.value("content", "");
      else if (path == "/v1/completions") streamed += c["choices"][0].value("text", "");
      else if (c["choices"][0]["delta"].contains("content") && c["choices"][0]["delta"]["content"].is_string())
        streamed += c["choices"][0]["delta"]["content"].get<std::string>();
    }
    EXPECT_EQ(streamed, text);  // same seed, same reply
  }
}

TEST(StructuredOutput, PropertiesComeInDeclarationOrder) {
  ServerProcess server({"-c", "1024"});
  auto cli = server.client();
  // Raw text: nlohmann::json would sort the keys before they reach the server.
  const std::string body = R"({"prompt":"Hello","n_predict":200,"seed":1,"json_schema":{"type":"object",
      "properties":{"zeta":{"type":"integer","minimum":0,"maximum":9},"alpha":{"type":"boolean"}},"required":["zeta","alpha"]}})";
  auto r = cli.Post("/completion", body, "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const std::string content = json::parse(r->body)["content"];
  const json v = json::parse(content);
  EXPECT_TRUE(v["zeta"].is_number_integer() && v["alpha"].is_boolean()) << content;
  EXPECT_LT(content.find("\"zeta\""), content.find("\"alpha\"")) << content;
}

TEST(StructuredOutput, JsonObjectConstAndGrammar) {
  ServerProcess server({"-c", "1024", "-np", "2"});
  auto cli = server.client();
  int status = 0;
  json r = post_json(cli, "/v1/chat/completions", chat({{"response_format", {{"type", "json_object"}}}, {"max_tokens", 300}}), &status);
  ASSERT_EQ(status, 200) << r.dump();
  if (r["choices"][0]["finish_reason"] == "stop") {
    const json v = json::parse(r["choices"][0]["message"]["content"].get<std::string>(), nullptr, false);
    EXPECT_TRUE(v.is_object()) << r.dump();
  } else {  // cut by the token limit: still a prefix of an object
    EXPECT_EQ(r["choices"][0]["message"]["content"].get<std::string>().substr(0, 1), "{");
  }
  r = post_json(cli, "/v1/chat/completions", chat({{"response_format", {{"type", "json_schema"}, {"json_schema", {{"schema", {{"const", "foooooo"}}}}}}}}), &status);
  EXPECT_EQ(r["choices"][0]["message"]["content"], "\"foooooo\"") << r.dump();
  r = post_json(cli, "/v1/chat/completions", chat({{"grammar", "root ::= \"a\"{5,5}"}, {"max_tokens", 6}}), &status);
  EXPECT_EQ(r["choices"][0]["message"]["content"], "aaaaa") << r.dump();
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  // n choices: each follows the grammar on its own
  r = post_json(cli, "/v1/completions", {{"prompt", "Hi"}, {"n", 3}, {"max_tokens", 10}, {"grammar", "root ::= \"yes\" | \"no\""}}, &status);
  ASSERT_EQ(status, 200) << r.dump();
  for (const json& c : r["choices"]) EXPECT_TRUE(c["text"] == "yes" || c["text"] == "no") << c.dump();
  // an empty grammar and "text" are no constraint
  post_json(cli, "/v1/chat/completions", chat({{"grammar", ""}, {"response_format", {{"type", "text"}}}, {"max_tokens", 2}}), &status);
  EXPECT_EQ(status, 200);
}

TEST(StructuredOutput, BadRequestsAreNamed) {
  ServerProcess server({"-c", "256"});
  auto cli = server.client();
  const json tool = {{"type", "function"}, {"function", {{"name", "f"}, {"parameters", {{"type", "object"}}}}}};
  struct Bad {
    const char* path;
    json body;
    const char* says;
  };
  const std::vector<Bad> cases = {
      {"/completion", {{"prompt", "x"}, {"grammar", "root ::= \"a\""}, {"json_schema", {{"type", "string"}}}}, "'grammar' and 'json_schema' both"},
      {"/completion", {{"prompt", "x"}, {"json_schema", {{"type", "string"}}}, {"response_format", {{"type", "json_object"}}}}, "'json_schema' and 'response_format' both"},
      {"/completion", {{"prompt", "x"}, {"json_schema", {{"type", "hiccup"}}}}, "unknown 'type' \"hiccup\""},
      {"/completion", {{"prompt", "x"}, {"json_schema", {{"not", {{"type", "string"}}}}}}, "'json_schema': unsupported JSON Schema keyword 'not'"},
      {"/completion", {{"prompt", "x"}, {"json_schema", 5}}, "'json_schema' must be a JSON schema"},
      {"/completion", {{"prompt", "x"}, {"grammar", "root ::= nope"}}, "'grammar': grammar:"},
      {"/completion", {{"prompt", "x"}, {"grammar", 3}}, "'grammar' must be a string"},
      {"/v1/chat/completions", chat({{"response_format", {{"type", "json_object"}, {"schema", 123}}}}), "'response_format.schema' must be a JSON schema"},
      {"/v1/chat/completions", chat({{"response_format", {{"type", "json_object"}, {"schema", {{"type", 123}}}}}}), "'type' must be a string"},
      {"/v1/chat/completions", chat({{"response_format", {{"type", "json_schema"}}}}), "needs 'json_schema.schema'"},
      {"/v1/chat/completions", chat({{"response_format", {{"type", "json_schema"}, {"json_schema", {{"schema", {{"pattern", "(?=x)"}}}}}}}}), "lookahead"},
      {"/v1/chat/completions", chat({{"response_format", {{"type", "sound"}}}}), "type must be text, json_object or json_schema"},
      {"/v1/chat/completions", chat({{"response_format", 3}}), "'response_format' must be an object"},
      {"/v1/completions", {{"prompt", "x"}, {"tools", {tool}}}, "'tools' is only taken by /v1/chat/completions"},
      {"/v1/chat/completions", chat({{"tools", {tool}}, {"response_format", {{"type", "json_object"}}}}), "'tools' and 'response_format' both"},
      {"/v1/chat/completions", chat({{"tools", {tool}}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "g"}}}}}}), "names the function 'g'"},
      {"/v1/chat/completions", chat({{"tools", {tool}}, {"tool_choice", "always"}}), "'tool_choice' must be"},
      {"/v1/chat/completions", chat({{"tool_choice", "required"}}), "needs 'tools'"},
      {"/v1/chat/completions", chat({{"tools", {{{"type", "function"}, {"function", {{"name", "a b"}}}}}}}), "'function.name' must be"},
      {"/v1/chat/completions", chat({{"tools", {tool, tool}}}), "two tools are named 'f'"},
      {"/v1/chat/completions", chat({{"tools", {{{"type", "retrieval"}}}}}), "each tool must be"},
      {"/v1/chat/completions", chat({{"tools", {{{"type", 5}}}}}), "each tool must be"},
      {"/v1/chat/completions", chat({{"tools", {tool}}, {"tool_choice", {{"type", 7}}}}), "'tool_choice' must be"},
      {"/v1/chat/completions", chat({{"tools", {tool}}, {"parallel_tool_calls", "yes"}}), "'parallel_tool_calls' must be a boolean"},
      {"/v1/chat/completions", chat({{"messages", {{{"role", "user"}, {"content", {{{"type", 1}}}}}}}}), "content parts must be"},
      {"/v1/chat/completions", chat(json::parse(R"({"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"x":{"if":{}}}}}}]})")),
       "'tools[0].function.parameters': unsupported JSON Schema keyword 'if'"},
      {"/v1/chat/completions", chat(json::parse(R"({"messages":[{"role":"tool","content":"r","tool_call_id":4}]})")), "'tool_call_id' must be a string"},
      {"/v1/chat/completions", chat(json::parse(R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"c","type":"function",
           "function":{"name":"f","arguments":"{nope"}}]},{"role":"user","content":"q"}]})")),
       "'arguments' must be JSON text"},
      {"/v1/chat/completions", chat(json::parse(R"({"messages":[{"role":"user","content":"q","tool_calls":[]}]})")), "'tool_calls' must be an array on an assistant message"},
  };
  for (const Bad& b : cases) {
    int status = 0;
    const json r = post_json(cli, b.path, b.body, &status);
    EXPECT_EQ(status, 400) << b.body.dump() << " → " << r.dump();
    EXPECT_EQ(r["error"]["type"], "invalid_request_error") << r.dump();
    EXPECT_NE(r["error"]["message"].get<std::string>().find(b.says), std::string::npos)
        << b.body.dump() << " → " << r.dump() << "\nexpected: " << b.says;
  }
}

const json kWeather = {{"type", "function"},
                       {"function",
                        {{"name", "get_weather"},
                         {"description", "The weather of a city"},
                         {"parameters", json::parse(R"({"type":"object","properties":{"city":{"type":"string","maxLength":12},
                             "unit":{"enum":["c","f"]}},"required":["city","unit"],"additionalProperties":false})")}}}};
const json kAdd = {{"type", "function"},
                   {"function", {{"name", "add"}, {"parameters", json::parse(R"({"type":"object","properties":{
                       "a":{"type":"integer","minimum":-99,"maximum":99},"b":{"type":"integer","minimum":-99,"maximum":99}},
                       "required":["a","b"],"additionalProperties":false})")}}}};

void expect_valid_call(const std::string& name, const std::string& arguments) {
  SCOPED_TRACE(name + " " + arguments);
  const json a = json::parse(arguments, nullptr, false);
  ASSERT_TRUE(a.is_object());
  if (name == "get_weather") {
    ASSERT_TRUE(a["city"].is_string());
    EXPECT_TRUE(a["unit"] == "c" || a["unit"] == "f");
    EXPECT_EQ(a.size(), 2u);
  } else {
    ASSERT_EQ(name, "add");
    EXPECT_TRUE(a["a"].is_number_integer() && a["b"].is_number_integer());
    EXPECT_EQ(a.size(), 2u);
  }
}

TEST(StructuredOutput, RequiredAndNamedToolCalls) {
  ServerProcess server({"-c", "2048"});
  auto cli = server.client();
  std::set<std::string> names;
  for (int seed = 0; seed < 4; ++seed) {
    int status = 0;
    const json r = post_json(cli, "/v1/chat/completions", chat({{"tools", {kWeather, kAdd}}, {"tool_choice", "required"}, {"seed", seed}}), &status);
    ASSERT_EQ(status, 200) << r.dump();
    const json& choice = r["choices"][0];
    ASSERT_EQ(choice["finish_reason"], "tool_calls") << r.dump();
    EXPECT_TRUE(choice["message"]["content"].is_null());
    ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u);
    const json& call = choice["message"]["tool_calls"][0];
    EXPECT_EQ(call["type"], "function");
    EXPECT_EQ(call["id"].get<std::string>().rfind("call_", 0), 0u) << call.dump();
    ASSERT_TRUE(call["function"]["arguments"].is_string());
    expect_valid_call(call["function"]["name"], call["function"]["arguments"]);
    names.insert(call["function"]["name"].get<std::string>());
  }
  for (int seed = 0; seed < 2; ++seed) {
    const json r = post_json(cli, "/v1/chat/completions",
                             chat({{"tools", {kWeather, kAdd}}, {"seed", seed},
                                   {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_weather"}}}}}}));
    const json& call = r["choices"][0]["message"]["tool_calls"][0];
    EXPECT_EQ(call["function"]["name"], "get_weather") << r.dump();
    expect_valid_call("get_weather", call["function"]["arguments"]);
  }
}

TEST(StructuredOutput, StreamedToolCallDeltas) {
  ServerProcess server({"-c", "2048"});
  const json body = chat({{"tools", {kWeather, kAdd}}, {"tool_choice", "required"}, {"stream", true}, {"seed", 2}});
  const StreamResult s = stream_post(server.port(), "/v1/chat/completions", body);
  ASSERT_EQ(s.status, 200) << s.body;
  std::string name, id, arguments, finish;
  int headers = 0;
  for (const json& c : chunks(s)) {
    const json& choice = c["choices"][0];
    if (choice["finish_reason"].is_string()) finish = choice["finish_reason"];
    const json& delta = choice["delta"];
    EXPECT_FALSE(delta.contains("content") && delta["content"].is_string()) << "no plain text in a call: " << c.dump();
    if (!delta.contains("tool_calls")) continue;
    const json& tc = delta["tool_calls"][0];
    EXPECT_EQ(tc["index"], 0);
    if (tc.contains("id")) {  // the first delta of the call
      ++headers;
      id = tc["id"];
      EXPECT_EQ(tc["type"], "function");
      name = tc["function"]["name"];
      EXPECT_EQ(tc["function"]["arguments"], "");
    } else {
      EXPECT_FALSE(tc["function"].contains("name"));
      arguments += tc["function"]["arguments"].get<std::string>();
    }
  }
  EXPECT_EQ(headers, 1);
  EXPECT_EQ(id.rfind("call_", 0), 0u);
  EXPECT_EQ(finish, "tool_calls");
  expect_valid_call(name, arguments);
  // the same call as the non-streamed reply
  json plain = body;
  plain.erase("stream");
  auto cli = server.client();
  const json r = post_json(cli, "/v1/chat/completions", plain);
  EXPECT_EQ(r["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], arguments);
}

TEST(StructuredOutput, AutoAndNone) {
  ServerProcess server({"-c", "2048"});
  auto cli = server.client();
  for (int seed = 0; seed < 3; ++seed) {
    const json r = post_json(cli, "/v1/chat/completions", chat({{"tools", {kAdd}}, {"seed", seed}, {"max_tokens", 60}}));
    const json& m = r["choices"][0]["message"];
    if (m.contains("tool_calls")) {
      EXPECT_EQ(r["choices"][0]["finish_reason"], "tool_calls");
      expect_valid_call("add", m["tool_calls"][0]["function"]["arguments"]);
    } else {  // plain text, which may not open a call
      ASSERT_TRUE(m["content"].is_string()) << r.dump();
      EXPECT_NE(m["content"].get<std::string>().substr(0, 1), "<") << r.dump();
    }
  }
  const json none = post_json(cli, "/v1/chat/completions", chat({{"tools", {kAdd}}, {"tool_choice", "none"}, {"max_tokens", 5}}));
  EXPECT_FALSE(none["choices"][0]["message"].contains("tool_calls"));
  EXPECT_TRUE(none["choices"][0]["message"]["content"].is_string());
}

TEST(StructuredOutput, ToolsAndToolTurnsAreRenderedIntoThePrompt) {
  ServerProcess server({"-c", "2048", "--chat-template", "chatml"});
  auto cli = server.client();
  const json messages = {
      {{"role", "user"}, {"content", "Add 2 and 3"}},
      {{"role", "assistant"}, {"content", nullptr},
       {"tool_calls", {{{"id", "call_1"}, {"type", "function"}, {"function", {{"name", "add"}, {"arguments", "{\"a\": 2, \"b\": 3}"}}}}}}},
      {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "5"}},
  };
  const json r = post_json(cli, "/apply-template", {{"messages", messages}, {"tools", {kAdd}}});
  const std::string prompt = r["prompt"];
  EXPECT_NE(prompt.find("<|im_start|>system\nYou may call one of these functions."), std::string::npos) << prompt;
  EXPECT_NE(prompt.find("{\"name\":\"add\",\"parameters\":{\"additionalProperties\":false,"), std::string::npos) << prompt;
  EXPECT_NE(prompt.find("<tool_call>{\"name\": \"FUNCTION NAME\", \"arguments\": {ARGUMENTS AS A JSON OBJECT}}</tool_call>"), std::string::npos) << prompt;
  EXPECT_NE(prompt.find("<|im_start|>assistant\n<tool_call>{\"name\": \"add\", \"arguments\": {\"a\": 2, \"b\": 3}}</tool_call><|im_end|>"),
            std::string::npos) << prompt;
  EXPECT_NE(prompt.find("<|im_start|>tool\n<tool_response>5</tool_response><|im_end|>"), std::string::npos) << prompt;
  // tool_choice none: the tools are not shown
  const json none = post_json(cli, "/apply-template", {{"messages", messages}, {"tools", {kAdd}}, {"tool_choice", "none"}});
  EXPECT_EQ(none["prompt"].get<std::string>().find("You may call"), std::string::npos);
  // the next turn after a tool result generates normally
  int status = 0;
  post_json(cli, "/v1/chat/completions", {{"messages", messages}, {"tools", {kAdd}}, {"max_tokens", 3}}, &status);
  EXPECT_EQ(status, 200);
}

TEST(StructuredOutput, ServeDefaultGrammar) {
  {
    ServerProcess server({"-c", "256", "--grammar", "root ::= \"yes\" | \"no\""});
    auto cli = server.client();
    const json r = post_json(cli, "/completion", {{"prompt", "Hi"}, {"n_predict", 8}});
    EXPECT_TRUE(r["content"] == "yes" || r["content"] == "no") << r.dump();
    // a request's own structured output replaces it
    const json own = post_json(cli, "/completion", {{"prompt", "Hi"}, {"n_predict", 8}, {"json_schema", {{"const", 7}}}});
    EXPECT_EQ(own["content"], "7") << own.dump();
  }
  {
    ServerProcess server({"-c", "256", "-j", R"({"type":"integer","minimum":10,"maximum":12})"});
    auto cli = server.client();
    const json r = post_json(cli, "/v1/completions", {{"prompt", "Hi"}, {"max_tokens", 8}});
    const std::string text = r["choices"][0]["text"];
    EXPECT_TRUE(text == "10" || text == "11" || text == "12") << r.dump();
  }
  const ProcessResult bad = run_process({bitnet_bin(), "serve", "-m", tiny_model(), "-j", R"({"not":{}})"});
  EXPECT_EQ(bad.code, 2) << bad.err;
  EXPECT_NE(bad.err.find("JSON schema: unsupported JSON Schema keyword 'not'"), std::string::npos) << bad.err;
  const ProcessResult both = run_process({bitnet_bin(), "serve", "-m", tiny_model(), "-j", "{}", "--grammar", "root ::= \"a\""});
  EXPECT_EQ(both.code, 2) << both.err;
  EXPECT_NE(both.err.find("give one of --grammar, --grammar-file, -j and -jf"), std::string::npos) << both.err;
  const ProcessResult gbad = run_process({bitnet_bin(), "serve", "-m", tiny_model(), "--grammar", "root ::= x"});
  EXPECT_EQ(gbad.code, 2) << gbad.err;
  EXPECT_NE(gbad.err.find("grammar:"), std::string::npos) << gbad.err;
}

}  // namespace
}  // namespace bitnet::testing
