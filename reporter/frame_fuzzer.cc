// libFuzzer target for the server's input path: bytes from one client
// connection -> FrameDecoder -> ClientMessage -> ReportBuilder, as the
// server's event loop applies them (hello first; any error ends the
// connection), then the report is built and rendered.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "reporter/frame.h"
#include "reporter/report.pb.h"
#include "reporter/report_builder.h"
#include "reporter/writers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace taskfork::reporter;
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  FrameDecoder decoder(64 * 1024);
  ReportBuilderOptions options;
  options.job_name = "fuzz";
  options.host = "h";
  options.submitter = "s";
  options.start_time = absl::FromUnixSeconds(1);
  ReportBuilder builder(options);
  ClientMessage m;
  std::string task_id;
  bool ok = true;
  // Feed in uneven chunks so frames straddle reads.
  for (size_t pos = 0, step = 1; pos < bytes.size() && ok; pos += step, step = step % 13 + 1) {
    decoder.Append(bytes.substr(pos, step));
    for (;;) {
      auto got = decoder.Next(&m);
      if (!got.ok()) {
        ok = false;
        break;
      }
      if (!*got) break;
      absl::Status s;
      if (task_id.empty()) {
        if (!m.has_hello() || m.hello().task_id().empty()) {
          ok = false;
          break;
        }
        task_id = m.hello().task_id();
        continue;
      }
      switch (m.kind_case()) {
        case ClientMessage::kTaskStart:
          s = builder.StartTask(task_id, 1, m.task_start());
          break;
        case ClientMessage::kTaskStop:
          s = builder.StopTask(task_id, 1, m.task_stop());
          break;
        case ClientMessage::kSectionStart:
          s = builder.StartSection(task_id, 1, m.section_start());
          break;
        case ClientMessage::kSectionStop:
          s = builder.StopSection(task_id, 1, m.section_stop());
          break;
        default:
          break;
      }
      if (!s.ok()) {
        ok = false;
        break;
      }
    }
  }
  (void)decoder.Finish();
  if (!task_id.empty()) {
    builder.CloseOpenSections(task_id, 1, MakeResultInfo(Result::kErrored, "gone"),
                              absl::FromUnixSeconds(2));
  }
  const JobReport report = builder.Build(absl::FromUnixSeconds(3));
  (void)ResultsJson(report);
  (void)JunitXml(report);
  return 0;
}
