#include "runner/job_spec.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/time/time.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork::runner {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

JobSpecContext Context() {
  JobSpecContext context;
  context.known_functions = {"sleepy", "hello"};
  context.cpu_count = 2;
  return context;
}

absl::StatusOr<Job> Parse(const std::string& text) {
  return ParseJobSpec(text, "/specs/job.textpb", Context());
}

TEST(ParseJobSpec, FullSpecWithDefaults) {
  auto job = Parse(R"pb(
    name: "demo"
    default_timeout: "30s"
    task { id: "greet" description: "says hello"
           function { name: "hello" args: "a" args: "b" } }
    task { timeout: "2m" command { argv: "true" argv: "--x" env { key: "K" value: "V" } } }
  )pb");
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->name, "demo");
  EXPECT_EQ(job->max_parallel, 2);  // 0 -> cpu_count
  EXPECT_EQ(job->termination_grace, absl::Seconds(5));
  ASSERT_EQ(job->tasks.size(), 2u);
  EXPECT_EQ(job->tasks[0].id, "greet");
  EXPECT_EQ(job->tasks[0].description, "says hello");
  EXPECT_EQ(job->tasks[0].kind, JobTask::Kind::kFunction);
  EXPECT_EQ(job->tasks[0].function, "hello");
  EXPECT_THAT(job->tasks[0].args, ElementsAre("a", "b"));
  EXPECT_EQ(job->tasks[0].timeout, absl::Seconds(30));
  EXPECT_EQ(job->tasks[1].id, "Task-2");
  EXPECT_EQ(job->tasks[1].kind, JobTask::Kind::kCommand);
  EXPECT_EQ(job->tasks[1].timeout, absl::Minutes(2));
  EXPECT_THAT(job->tasks[1].argv[0], HasSubstr("/true"));
  EXPECT_EQ(job->tasks[1].argv[1], "--x");
  EXPECT_THAT(job->tasks[1].env, ElementsAre(Pair("K", "V")));
}

TEST(ParseJobSpec, NameDefaultsToFileNameAndTimeoutsToInfinite) {
  auto job = Parse(R"pb(max_parallel: 3 task { function { name: "hello" } })pb");
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->name, "job");
  EXPECT_EQ(job->max_parallel, 3);
  EXPECT_EQ(job->tasks[0].timeout, absl::InfiniteDuration());
  EXPECT_EQ(job->tasks[0].id, "Task-1");
}

TEST(ParseJobSpec, SyntaxErrorHasLineAndColumn) {
  EXPECT_THAT(Parse("name: \"x\"\ntask {\n  id: 5\n}\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("/specs/job.textpb:3:7: Expected string")));
}

TEST(ParseJobSpec, UnknownFieldNamesIt) {
  EXPECT_THAT(Parse("name: \"x\"\nmax_paralel: 2\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("/specs/job.textpb:2:"),
                             HasSubstr("max_paralel"))));
}

TEST(ParseJobSpec, DuplicateIdsPointAtBoth) {
  EXPECT_THAT(Parse("task {\n id: \"a\" function { name: \"hello\" } }\n"
                    "task {\n id: \"a\" function { name: \"hello\" } }\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("/specs/job.textpb:4:2: duplicate task id "
                                 "\"a\" (first used on line 2)")));
}

TEST(ParseJobSpec, UnknownFunctionListsKnownOnes) {
  EXPECT_THAT(Parse("task { id: \"t\"\n function { name: \"helo\" } }"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("job.textpb:2:2: task \"t\": unknown function "
                                 "\"helo\"; known functions: hello, sleepy")));
}

TEST(ParseJobSpec, MissingExecutable) {
  EXPECT_THAT(
      Parse("task { command { argv: \"no-such-program-xyz\" } }"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("executable \"no-such-program-xyz\" not found")));
  EXPECT_THAT(Parse("task { command { argv: \"/nonexistent/bin/x\" } }"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("looked at: /nonexistent/bin/x")));
  const std::string plain = std::string(std::getenv("TEST_TMPDIR")) + "/plain";
  std::ofstream(plain) << "not a program\n";
  ASSERT_EQ(::chmod(plain.c_str(), 0644), 0);
  EXPECT_THAT(Parse("task { command { argv: \"" + plain + "\" } }"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not found or not executable")));
}

TEST(ParseJobSpec, EmptyCommandAndMissingKind) {
  EXPECT_THAT(Parse("task { id: \"c\" command { } }"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("task \"c\": command has no argv")));
  EXPECT_THAT(Parse("task { id: \"k\" }"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("job.textpb:1:1: task \"k\" has neither")));
}

TEST(ParseJobSpec, BadValues) {
  EXPECT_THAT(Parse("default_timeout: \"soon\" task { function { name: \"hello\" } }"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("default_timeout \"soon\" is not a positive "
                                 "duration")));
  EXPECT_THAT(Parse("task { timeout: \"-3s\" function { name: \"hello\" } }"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("timeout \"-3s\" of task \"Task-1\"")));
  EXPECT_THAT(Parse("termination_grace: \"inf\" task { function { name: \"hello\" } }"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("termination_grace \"inf\"")));
  EXPECT_THAT(Parse("max_parallel: -1 task { function { name: \"hello\" } }"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("max_parallel must be >= 0")));
  EXPECT_THAT(Parse("task { id: \"a/b\" function { name: \"hello\" } }"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("invalid task id \"a/b\"")));
  EXPECT_THAT(Parse("name: \"../x\" task { function { name: \"hello\" } }"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("invalid job name \"../x\"")));
  EXPECT_THAT(Parse("name: \"x\""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("the job has no tasks")));
}

TEST(ParseJobSpec, ShardsOfAGTestCommand) {
  auto job = Parse(
      "task { id: \"s\" command { argv: \"true\" gtest: true shards: 4 } }\n"
      "task { id: \"u\" command { argv: \"true\" gtest: true } }\n"
      "task { id: \"one\" command { argv: \"true\" shards: 1 } }\n");
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->tasks[0].shards, 4);
  EXPECT_EQ(job->tasks[1].shards, 1);  // unset: not sharded
  EXPECT_EQ(job->tasks[2].shards, 1);
}

TEST(ParseJobSpec, BadShardsPointAtTheField) {
  EXPECT_THAT(
      Parse("task { id: \"z\"\n command { argv: \"true\" gtest: true\n"
            "   shards: 0 } }"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("job.textpb:3:4: task \"z\": shards must be between "
                         "1 and 1000, got 0")));
  EXPECT_THAT(
      Parse("task { id: \"n\" command { argv: \"true\" gtest: true "
            "shards: -2 } }"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("job.textpb:1:51: task \"n\": shards must be "
                         "between 1 and 1000, got -2")));
  EXPECT_THAT(
      Parse("task { id: \"big\" command { argv: \"true\" gtest: true "
            "shards: 1001 } }"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("shards must be between 1 and 1000, got 1001")));
  EXPECT_THAT(
      Parse("task { id: \"plain\"\n command { argv: \"true\" shards: 3 } }"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("job.textpb:2:25: task \"plain\": shards needs "
                         "gtest: true")));
}

TEST(ParseJobSpec, ReportsEveryProblemAtOnce) {
  auto job = Parse("task { id: \"a\" function { name: \"nope\" } }\n"
                   "task { id: \"a\" command { argv: \"/nope\" } }\n");
  ASSERT_THAT(job, StatusIs(absl::StatusCode::kInvalidArgument));
  const std::string message(job.status().message());
  EXPECT_THAT(message, HasSubstr("unknown function \"nope\""));
  EXPECT_THAT(message, HasSubstr("duplicate task id \"a\""));
  EXPECT_THAT(message, HasSubstr("executable \"/nope\""));
}

TEST(LoadJobSpec, MissingFileIsNotFoundWithPath) {
  EXPECT_THAT(LoadJobSpec("/nonexistent/job.textpb", Context()),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("/nonexistent/job.textpb")));
}

TEST(LoadJobSpec, RelativeCommandResolvesAgainstSpecDirThenRunfiles) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/specdir";
  const std::string runfiles =
      std::string(std::getenv("TEST_TMPDIR")) + "/runfiles";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(runfiles.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((runfiles + "/bin").c_str(), 0755), 0);
  {
    std::ofstream(dir + "/local.sh") << "#!/bin/sh\n";
    std::ofstream(runfiles + "/bin/built.sh") << "#!/bin/sh\n";
    std::ofstream(dir + "/job.textpb")
        << "task { command { argv: \"./local.sh\" } }\n"
           "task { command { argv: \"built.sh\" } }\n"
           "task { command { argv: \"bin/built.sh\" } }\n";
  }
  ASSERT_EQ(::chmod((dir + "/local.sh").c_str(), 0755), 0);
  ASSERT_EQ(::chmod((runfiles + "/bin/built.sh").c_str(), 0755), 0);
  JobSpecContext context = Context();
  context.runfiles_dir = runfiles;
  context.path_env = runfiles + "/bin";
  auto job = LoadJobSpec(dir + "/job.textpb", context);
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->tasks[0].argv[0], dir + "/./local.sh");
  EXPECT_EQ(job->tasks[1].argv[0], runfiles + "/bin/built.sh");  // via PATH
  EXPECT_EQ(job->tasks[2].argv[0], runfiles + "/bin/built.sh");  // runfiles
  EXPECT_EQ(job->spec_text.substr(0, 4), "task");
}

}  // namespace
}  // namespace taskfork::runner
