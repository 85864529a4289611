#include "fastsam/image_ops.hpp"
#include "harness.hpp"

using namespace fastsam;

TEST(pil_resize_keeps_constant_images_and_same_size_copies) {
  std::vector<uint8_t> img(7 * 9 * 3, 77);
  const Image8 down = resize_bilinear_pil(img.data(), 7, 9, 3, 3, 4);
  CHECK_EQ(down.data.size(), 3u * 4 * 3);
  for (uint8_t v : down.data) CHECK_EQ(int(v), 77);
  img[5] = 200;
  CHECK(resize_bilinear_pil(img.data(), 7, 9, 3, 7, 9).data == img);
}

TEST(pil_resize_uses_the_antialiased_triangle_filter) {
  // Downscale 4 -> 2 (one channel): scale 2, support 2; output 0 is centred at 1.0 and reads inputs 0..2 with
  // triangle weights 0.75, 0.75, 0.25 (normalised by 1.75): (0*.75 + 100*.75 + 200*.25) / 1.75 = 71.43 -> 71.
  const uint8_t row[] = {0, 100, 200, 50};
  const Image8 out = resize_bilinear_pil(row, 1, 4, 1, 1, 2);
  CHECK_EQ(int(out.data[0]), 71);
  // Output 1 centred at 3.0 reads inputs 1..3 with weights 0.25, 0.75, 0.75: (25 + 150 + 37.5) / 1.75 = 121.4.
  CHECK_EQ(int(out.data[1]), 121);
  // The vertical pass uses the same filter: a 4x1 column resizes like the row.
  const Image8 col = resize_bilinear_pil(row, 4, 1, 1, 2, 1);
  CHECK_EQ(int(col.data[0]), 71);
  CHECK_EQ(int(col.data[1]), 121);
  CHECK_THROWS(resize_bilinear_pil(row, 1, 4, 5, 1, 2), std::invalid_argument, "channels");
}

TEST(torch_bilinear_matches_align_corners_false) {
  const float plane[] = {0, 1, 2, 3};
  const std::vector<float> up = resize_bilinear_torch(plane, 2, 2, 4, 4);
  // Source x for outputs 0..3 is clamp(0.5 * (x + 0.5) - 0.5) = 0, 0.25, 0.75, 1.25 -> clamped index 1.
  const float expected_row0[] = {0.0f, 0.25f, 0.75f, 1.0f};
  const float expected_row1[] = {0.5f, 0.75f, 1.25f, 1.5f};
  for (int x = 0; x < 4; ++x) {
    CHECK_NEAR(up[x], expected_row0[x], 1e-7);
    CHECK_NEAR(up[4 + x], expected_row1[x], 1e-7);
    CHECK_NEAR(up[12 + x], expected_row0[x] + 2.0f, 1e-7);
  }
}

TEST(postprocess_mask_crops_the_padded_frame_before_resizing) {
  // Low-res columns 0..5 are positive. The image fills the top-left 16x16 of the padded 32x32 frame, whose
  // columns read low-res columns <= 4 only, so the crop is entirely positive; uncropped, the right is negative.
  std::vector<float> low(8 * 8);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) low[y * 8 + x] = x < 6 ? 5.0f : -5.0f;
  const std::vector<float> out = postprocess_mask(low.data(), 8, 8, 32, 16, 16, 16, 16);
  CHECK_EQ(out.size(), 256u);
  for (int x = 0; x < 16; ++x) CHECK_NEAR(out[3 * 16 + x], 5.0, 1e-6);
  const std::vector<float> wide = postprocess_mask(low.data(), 8, 8, 32, 32, 32, 4, 4);
  CHECK(wide[0] > 0 && wide[3] < 0);
  CHECK_THROWS(postprocess_mask(low.data(), 8, 8, 32, 33, 16, 4, 4), std::invalid_argument, "exceeds");
}

TEST(remove_small_regions_fills_holes_and_drops_islands) {
  // 6x6: a 3x3 square (rows/cols 1..3) with a one-pixel hole, plus a pixel touching it diagonally.
  std::vector<uint8_t> m(36, 0);
  for (int y = 1; y <= 3; ++y)
    for (int x = 1; x <= 3; ++x) m[y * 6 + x] = 1;
  m[2 * 6 + 2] = 0;
  m[0 * 6 + 4] = 1;
  std::vector<uint8_t> holes = m;
  CHECK(remove_small_regions(holes, 6, 6, 2, RegionMode::kHoles));
  CHECK_EQ(int(holes[2 * 6 + 2]), 1);
  std::vector<uint8_t> islands = m;
  CHECK(!remove_small_regions(islands, 6, 6, 2, RegionMode::kIslands));  // 8-connectivity joins (0,4)
  islands[5 * 6 + 5] = 1;  // two rows/cols away from the square: a separate island
  CHECK(remove_small_regions(islands, 6, 6, 2, RegionMode::kIslands));
  CHECK_EQ(int(islands[5 * 6 + 5]), 0);
  CHECK_EQ(int(islands[0 * 6 + 4]), 1);
  CHECK_EQ(int(islands[1 * 6 + 1]), 1);
  // When every island is small the largest one is kept.
  std::vector<uint8_t> tiny(25, 0);
  tiny[0] = 1;
  tiny[12] = tiny[13] = 1;
  CHECK(remove_small_regions(tiny, 5, 5, 100, RegionMode::kIslands));
  CHECK_EQ(int(tiny[0]), 0);
  CHECK_EQ(int(tiny[12]) + int(tiny[13]), 2);
}

HARNESS_MAIN()
