#include "runtime/protocol.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace togo::runtime {
namespace {

struct Pair {
  Fd a, b;
  Pair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0);
    a = Fd(fds[0]);
    b = Fd(fds[1]);
  }
};

// Small and large messages arrive whole, in order, each
// with its own descriptors.
TEST(Protocol, MessagesOfEverySizeArriveWholeWithTheirDescriptors) {
  Pair p;
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  Fd r(pipe_fds[0]), w(pipe_fds[1]);
  const std::string big(100 * 1024, 'x');  // as much as a socket buffer takes
  ASSERT_TRUE(send_message(p.a.get(), MsgType::kSpawn, "small", {w.get()}));
  ASSERT_TRUE(send_message(p.a.get(), MsgType::kStatus, big));
  ASSERT_TRUE(send_message(p.a.get(), MsgType::kStop, ""));

  auto open_fds = [] {
    int n = 0;
    for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/fd")) n++;
    return n;
  };
  int before = open_fds();
  auto one = recv_message(p.b.get());
  ASSERT_TRUE(one) << one.error().message;
  EXPECT_EQ(one->type, MsgType::kSpawn);
  EXPECT_EQ(one->body, "small");
  ASSERT_EQ(one->fds.size(), 1u);
  EXPECT_EQ(open_fds(), before + 1) << "the message's descriptor, and no other";
  ASSERT_EQ(::write(one->fds[0].get(), "!", 1), 1);  // the pipe's write end
  char c = 0;
  ASSERT_EQ(::read(r.get(), &c, 1), 1);
  EXPECT_EQ(c, '!');

  auto two = recv_message(p.b.get());
  ASSERT_TRUE(two) << two.error().message;
  EXPECT_EQ(two->type, MsgType::kStatus);
  EXPECT_EQ(two->body, big);
  EXPECT_TRUE(two->fds.empty());

  auto three = recv_message(p.b.get());
  ASSERT_TRUE(three) << three.error().message;
  EXPECT_EQ(three->type, MsgType::kStop);
  EXPECT_EQ(three->body, "");

  p.a.reset();
  auto closed = recv_message(p.b.get());
  ASSERT_FALSE(closed);
  EXPECT_EQ(closed.error().kind, ErrorKind::kNotFound);
}

}  // namespace
}  // namespace togo::runtime
