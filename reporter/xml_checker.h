// A strict, small XML 1.0 parser for tests: checks well-formedness and gives
// the element tree back, so tests can parse xunit.xml (testonly).
//
//   TASKFORK_ASSIGN_OR_RETURN(XmlElement root, ParseXml(text));
//   EXPECT_EQ(root.name, "testsuites");
//   EXPECT_EQ(root.attrs.at("tests"), "3");
#ifndef TASKFORK_REPORTER_XML_CHECKER_H_
#define TASKFORK_REPORTER_XML_CHECKER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace taskfork::reporter {

struct XmlElement {
  std::string name;
  std::map<std::string, std::string> attrs;  // entity references decoded
  std::vector<XmlElement> children;
  std::string text;  // concatenated character data, decoded

  // Children named `name`.
  std::vector<const XmlElement*> Children(absl::string_view name) const;
};

// Parses a document: optional <?xml ...?> declaration, one root element,
// whitespace. Rejects (kInvalidArgument, with the byte offset) mismatched or
// unclosed tags, unquoted or duplicate attributes, raw '<' or '&' in values,
// unknown entities, characters XML 1.0 forbids and invalid UTF-8.
absl::StatusOr<XmlElement> ParseXml(absl::string_view text);

}  // namespace taskfork::reporter

#endif  // TASKFORK_REPORTER_XML_CHECKER_H_
