// Checks xunit.xml in tests with libxml2 (testonly): a real XML parser, and
// validation against reporter/junit.xsd, the JUnit format Jenkins and GitLab
// read. The element tree comes back so tests can look at what was written.
//
//   TASKFORK_ASSIGN_OR_RETURN(XmlElement root, ParseJunitXml(text));
//   EXPECT_EQ(root.name, "testsuites");
//   EXPECT_EQ(root.attrs.at("tests"), "3");
#ifndef TASKFORK_REPORTER_JUNIT_CHECKER_H_
#define TASKFORK_REPORTER_JUNIT_CHECKER_H_

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

// Parses a document with libxml2 (no network, no DTD loading, no entity
// expansion beyond XML's own). Not well-formed: kInvalidArgument with
// libxml2's message and line.
absl::StatusOr<XmlElement> ParseXml(absl::string_view text);

// Parses `text` and validates it against the XML Schema at `xsd_path`.
// kNotFound if the schema cannot be read, kInternal if it is not a valid
// schema, kInvalidArgument (libxml2's messages, with lines) if `text` is not
// well-formed or not valid.
absl::StatusOr<XmlElement> ParseValidXml(absl::string_view text,
                                         const std::string& xsd_path);

// reporter/junit.xsd in the test's runfiles (a `data` dependency).
std::string JunitXsdPath();

// ParseValidXml(text, JunitXsdPath()).
absl::StatusOr<XmlElement> ParseJunitXml(absl::string_view text);

}  // namespace taskfork::reporter

#endif  // TASKFORK_REPORTER_JUNIT_CHECKER_H_
