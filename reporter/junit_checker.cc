#include "reporter/junit_checker.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlschemas.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace taskfork::reporter {

std::vector<const XmlElement*> XmlElement::Children(absl::string_view child) const {
  std::vector<const XmlElement*> out;
  for (const XmlElement& c : children) {
    if (c.name == child) out.push_back(&c);
  }
  return out;
}

namespace {

struct DocDeleter {
  void operator()(xmlDoc* doc) const { xmlFreeDoc(doc); }
};
using Doc = std::unique_ptr<xmlDoc, DocDeleter>;

// libxml2's messages ("line 3: ...") for one call, in order.
void CollectError(void* messages, xmlError* error) {
  std::string message = error->message != nullptr ? error->message : "?";
  while (!message.empty() && message.back() == '\n') message.pop_back();
  static_cast<std::vector<std::string>*>(messages)->push_back(
      absl::StrCat("line ", error->line, ": ", message));
}

std::string Chars(const xmlChar* s) {
  return s == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(s));
}

XmlElement ToElement(xmlDoc* doc, xmlNode* node) {
  XmlElement e;
  e.name = Chars(node->name);
  for (xmlAttr* a = node->properties; a != nullptr; a = a->next) {
    xmlChar* value = xmlNodeListGetString(doc, a->children, 1);
    e.attrs[Chars(a->name)] = Chars(value);
    xmlFree(value);
  }
  for (xmlNode* c = node->children; c != nullptr; c = c->next) {
    if (c->type == XML_ELEMENT_NODE) {
      e.children.push_back(ToElement(doc, c));
    } else if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
      e.text += Chars(c->content);
    }
  }
  return e;
}

absl::StatusOr<Doc> Parse(absl::string_view text) {
  std::vector<std::string> messages;
  xmlSetStructuredErrorFunc(&messages, CollectError);
  Doc doc(xmlReadMemory(text.data(), static_cast<int>(text.size()), "xunit.xml",
                        nullptr, XML_PARSE_NONET | XML_PARSE_NOWARNING));
  xmlSetStructuredErrorFunc(nullptr, nullptr);
  if (doc == nullptr || !messages.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not well-formed XML: ", absl::StrJoin(messages, "; ")));
  }
  return doc;
}

}  // namespace

absl::StatusOr<XmlElement> ParseXml(absl::string_view text) {
  absl::StatusOr<Doc> doc = Parse(text);
  if (!doc.ok()) return doc.status();
  return ToElement(doc->get(), xmlDocGetRootElement(doc->get()));
}

absl::StatusOr<XmlElement> ParseValidXml(absl::string_view text,
                                         const std::string& xsd_path) {
  std::ifstream in(xsd_path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read schema ", xsd_path));
  std::stringstream xsd;
  xsd << in.rdbuf();
  const std::string schema_text = xsd.str();

  std::vector<std::string> messages;
  xmlSchemaParserCtxt* parser =
      xmlSchemaNewMemParserCtxt(schema_text.data(), static_cast<int>(schema_text.size()));
  xmlSchemaSetParserStructuredErrors(parser, CollectError, &messages);
  xmlSetStructuredErrorFunc(&messages, CollectError);  // the schema's own XML
  xmlSchema* schema = xmlSchemaParse(parser);
  xmlSetStructuredErrorFunc(nullptr, nullptr);
  xmlSchemaFreeParserCtxt(parser);
  if (schema == nullptr) {
    return absl::InternalError(absl::StrCat("schema ", xsd_path, " is not valid: ",
                                            absl::StrJoin(messages, "; ")));
  }
  absl::StatusOr<Doc> doc = Parse(text);
  if (!doc.ok()) {
    xmlSchemaFree(schema);
    return doc.status();
  }
  xmlSchemaValidCtxt* validator = xmlSchemaNewValidCtxt(schema);
  xmlSchemaSetValidStructuredErrors(validator, CollectError, &messages);
  const int result = xmlSchemaValidateDoc(validator, doc->get());
  xmlSchemaFreeValidCtxt(validator);
  xmlSchemaFree(schema);
  if (result != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not valid against ", xsd_path, ": ", absl::StrJoin(messages, "; ")));
  }
  return ToElement(doc->get(), xmlDocGetRootElement(doc->get()));
}

std::string JunitXsdPath() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir != nullptr ? srcdir : ".", "/",
                      workspace != nullptr ? workspace : "taskfork",
                      "/reporter/junit.xsd");
}

absl::StatusOr<XmlElement> ParseJunitXml(absl::string_view text) {
  return ParseValidXml(text, JunitXsdPath());
}

}  // namespace taskfork::reporter
