// Caption cleaning against hand-worked LAVIS pre_caption results.
#include <gtest/gtest.h>

#include "msmedcap/data/text.h"

namespace msmedcap::data {
namespace {

TEST(CleanCaption, MatchesLavisPreCaption) {
  // lower -> ". ( ) :" become spaces -> whitespace runs collapse -> strip.
  EXPECT_EQ(clean_caption("Axial MRI (coronal view)."), "axial mri coronal view");
  EXPECT_EQ(clean_caption("  CT: large mass;  LEFT kidney!!  "), "ct large mass left kidney");
  EXPECT_EQ(clean_caption("T2-weighted image, \"hyperintense\" ~ lesion*"), "t2-weighted image, hyperintense lesion");
  EXPECT_EQ(clean_caption("...:;"), "");
}

TEST(CleanCaption, TruncatesToMaxWordsAndPrependsThePrompt) {
  CaptionCleaning options;
  options.max_words = 3;
  options.prompt = "a photo of ";
  EXPECT_EQ(clean_caption("One two  three four five.", options), "a photo of one two three");
  options.max_words = 0;
  EXPECT_EQ(clean_caption("One two three four five.", options), "a photo of one two three four five");
}

TEST(CleanCaption, EveryStepCanBeTurnedOff) {
  CaptionCleaning options;
  options.lowercase = false;
  options.strip_chars = "";
  EXPECT_EQ(clean_caption(" Keep (Case). ", options), "Keep (Case).");
  // Non-ASCII bytes pass through unchanged (Python would lowercase "É"; documented difference).
  EXPECT_EQ(clean_caption("Éclat “quoted”"), "Éclat “quoted”");
}

}  // namespace
}  // namespace msmedcap::data
