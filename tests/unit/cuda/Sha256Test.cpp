//===- Sha256Test.cpp - SHA-256 against FIPS 180-4 test vectors -----------===//
//
// The kernel cache trusts this hash for keys and checksums, so it is checked
// against the published vectors, across block boundaries and incrementally.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/Sha256.h"

#include <gtest/gtest.h>

using namespace halo::cuda;

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(toHex(sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(toHex(sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(
      toHex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(toHex(sha256(std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, IncrementalMatchesOneShot) {
  std::string message;
  for (int i = 0; i < 300; ++i)
    message.push_back(char(i * 7 + 3));
  for (size_t chunk : {1, 3, 55, 56, 63, 64, 65, 200}) {
    Sha256 hasher;
    for (size_t at = 0; at < message.size(); at += chunk)
      hasher.update(std::string_view(message).substr(at, chunk));
    EXPECT_EQ(hasher.digest(), sha256(message)) << "chunk " << chunk;
  }
}

TEST(Sha256, FieldsDoNotCollideAcrossSplits) {
  Sha256 ab_c, a_bc;
  ab_c.updateField("ab");
  ab_c.updateField("c");
  a_bc.updateField("a");
  a_bc.updateField("bc");
  EXPECT_NE(ab_c.digest(), a_bc.digest());
}
