// The 16-bit build of GDCM's libjpeg (lossless JPEG of 13..16 bits).
#include <cstdio>
extern "C" {
#include <gdcmjpeg/16/jinclude.h>
#include <gdcmjpeg/16/jpeglib.h>
#include <gdcmjpeg/16/jerror.h>
}
#define MSMEDCAP_JPEG_DECODE decode_jpeg_ijg16
#include "jpeg_ijg.inc"
