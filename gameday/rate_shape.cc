#include "gameday/rate_shape.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <utility>

#include "gameday/json_reader.h"
#include "gameday/units.h"
#include "sim/check.h"
#include "sim/detmath.h"

namespace dynasim::gameday {

namespace {

constexpr double kTwoPi = 6.28318530717958647692;
constexpr int64_t kNanosecondsPerMinute = 60'000'000'000;
// A replay holds at most this many minutes (69 days; our bound, above the 30-day longest run).
constexpr size_t kMaxReplayMinutes = 100'000;

double seconds_of(sim::Duration duration) {
  return static_cast<double>(duration.ns) / 1e9;
}

// A piecewise-linear function of time: (seconds, rate) breakpoints in time order; constant
// before the first and after the last. Two points at one time make a step.
using Breakpoints = std::vector<std::pair<double, double>>;

double linear_at(const Breakpoints& points, double t) {
  if (t < points.front().first) return points.front().second;
  for (size_t i = 0; i + 1 < points.size(); ++i) {
    const auto [t0, r0] = points[i];
    const auto [t1, r1] = points[i + 1];
    if (t >= t0 && t < t1) return r0 + (r1 - r0) * (t - t0) / (t1 - t0);
  }
  return points.back().second;
}

double linear_integral(const Breakpoints& points, double a, double b) {
  if (b <= a) return 0;
  double total = 0;
  // Before the first point and after the last, the function is constant.
  const double first = points.front().first;
  const double last = points.back().first;
  if (a < first) total += (std::min(b, first) - a) * points.front().second;
  if (b > last) total += (b - std::max(a, last)) * points.back().second;
  for (size_t i = 0; i + 1 < points.size(); ++i) {
    const auto [t0, r0] = points[i];
    const auto [t1, r1] = points[i + 1];
    const double lo = std::max(a, t0);
    const double hi = std::min(b, t1);
    if (hi <= lo) continue;
    const double slope = (r1 - r0) / (t1 - t0);
    const double r_lo = r0 + slope * (lo - t0);
    const double r_hi = r0 + slope * (hi - t0);
    total += (hi - lo) * (r_lo + r_hi) / 2;
  }
  return total;
}

Breakpoints spike_points(const RateShape& shape) {
  const double at = seconds_of(shape.at);
  const double top = at + seconds_of(shape.rise);
  const double down = top + seconds_of(shape.hold);
  const double end = down + seconds_of(shape.fall);
  return {{at, shape.base_per_second},
          {top, shape.peak_per_second},
          {down, shape.peak_per_second},
          {end, shape.base_per_second}};
}

// The sine's angle at `t`: 2 pi ((t + phase) mod period) / period, reduced in integers first.
double diurnal_angle(const RateShape& shape, sim::Duration t) {
  const int64_t period = shape.period.ns;
  const int64_t into = (t.ns % period + shape.phase.ns % period) % period;
  return kTwoPi * (static_cast<double>(into) / static_cast<double>(period));
}

// The standard normal distribution function, from the complementary error function by the
// Chebyshev fit of Numerical Recipes (2nd ed., section 6.2, erfcc: fractional error below
// 1.2e-7 everywhere), with det_exp.
double normal_cdf(double z) {
  const double x = -z / 1.41421356237309504880;
  const double ax = std::fabs(x);
  const double t = 1.0 / (1.0 + 0.5 * ax);
  const double poly =
      -ax * ax - 1.26551223 +
      t * (1.00002368 +
           t * (0.37409196 +
                t * (0.09678418 +
                     t * (-0.18628806 +
                          t * (0.27886807 +
                               t * (-1.13520398 +
                                    t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  const double erfc_ax = t * sim::det_exp(poly);
  const double erfc_x = x >= 0 ? erfc_ax : 2.0 - erfc_ax;
  return 0.5 * erfc_x;
}

// P(S <= x) for the untruncated lognormal.
double lognormal_cdf(const ItemSizeDistribution& d, double x) {
  if (x <= 0) return 0;
  if (d.sigma <= 0) return x >= static_cast<double>(d.median_bytes) ? 1.0 : 0.0;
  return normal_cdf((sim::det_log(x) - sim::det_log(static_cast<double>(d.median_bytes))) /
                    d.sigma);
}

uint64_t ceil_div(uint64_t a, uint64_t b) {
  return (a + b - 1) / b;
}

}  // namespace

// ---- RateShape ---------------------------------------------------------------------------------

RateShape RateShape::constant(double per_second) {
  RateShape shape;
  shape.kind = Kind::kConstant;
  shape.constant_per_second = per_second;
  return shape;
}

RateShape RateShape::ramp(double from, double to, sim::Duration over) {
  RateShape shape;
  shape.kind = Kind::kRamp;
  shape.from_per_second = from;
  shape.to_per_second = to;
  shape.over = over;
  return shape;
}

const char* to_string(RateShape::Kind kind) {
  switch (kind) {
    case RateShape::Kind::kConstant:
      return "constant";
    case RateShape::Kind::kRamp:
      return "ramp";
    case RateShape::Kind::kDiurnal:
      return "diurnal";
    case RateShape::Kind::kSpike:
      return "spike";
    case RateShape::Kind::kReplay:
      return "replay";
  }
  return "?";
}

double RateShape::rate_at(sim::Duration since_start) const {
  DYN_ASSERT(since_start.ns >= 0);
  switch (kind) {
    case Kind::kConstant:
      return constant_per_second;
    case Kind::kRamp: {
      const double t = seconds_of(since_start);
      const double length = seconds_of(over);
      const double slope = (to_per_second - from_per_second) / length;
      if (plant_ramp_ignores_end) return std::max(0.0, from_per_second + slope * t);
      if (t >= length) return to_per_second;
      return from_per_second + slope * t;
    }
    case Kind::kDiurnal:
      return mean_per_second +
             amplitude_per_second * sim::det_sin(diurnal_angle(*this, since_start));
    case Kind::kSpike:
      return linear_at(spike_points(*this), seconds_of(since_start));
    case Kind::kReplay: {
      const auto minute = static_cast<uint64_t>(since_start.ns / kNanosecondsPerMinute);
      return minute < per_minute_per_second.size() ? per_minute_per_second[minute] : 0.0;
    }
  }
  return 0;
}

double RateShape::max_rate(sim::Duration length) const {
  switch (kind) {
    case Kind::kConstant:
      return constant_per_second;
    case Kind::kRamp:
      // Linear (or linear then flat): the maximum is at one of the ends.
      return std::max(rate_at(sim::Duration(0)), rate_at(length));
    case Kind::kDiurnal:
      return mean_per_second + amplitude_per_second;
    case Kind::kSpike:
      return std::max(base_per_second, peak_per_second);
    case Kind::kReplay: {
      double highest = 0;
      const int64_t minutes = length.ns / kNanosecondsPerMinute + 1;
      for (size_t m = 0; m < per_minute_per_second.size() && static_cast<int64_t>(m) < minutes;
           ++m) {
        highest = std::max(highest, per_minute_per_second[m]);
      }
      return highest;
    }
  }
  return 0;
}

double RateShape::expected_operations(sim::Duration from, sim::Duration to) const {
  if (to <= from) return 0;
  const double a = seconds_of(from);
  const double b = seconds_of(to);
  switch (kind) {
    case Kind::kConstant:
      return constant_per_second * (b - a);
    case Kind::kRamp: {
      if (plant_ramp_ignores_end) {
        return (rate_at(from) + rate_at(to)) / 2 * (b - a);
      }
      return linear_integral({{0.0, from_per_second}, {seconds_of(over), to_per_second}}, a, b);
    }
    case Kind::kDiurnal: {
      // The integral of sin over [a, b] of angle 2 pi (t + phase) / P is
      // P / (2 pi) (cos(angle(a)) - cos(angle(b))).
      const double period_s = seconds_of(period);
      return mean_per_second * (b - a) + amplitude_per_second * period_s / kTwoPi *
                                             (sim::det_cos(diurnal_angle(*this, from)) -
                                              sim::det_cos(diurnal_angle(*this, to)));
    }
    case Kind::kSpike:
      return linear_integral(spike_points(*this), a, b);
    case Kind::kReplay: {
      double total = 0;
      for (size_t m = 0; m < per_minute_per_second.size(); ++m) {
        const int64_t start = static_cast<int64_t>(m) * kNanosecondsPerMinute;
        const int64_t lo = std::max(start, from.ns);
        const int64_t hi = std::min(start + kNanosecondsPerMinute, to.ns);
        if (hi > lo) total += per_minute_per_second[m] * static_cast<double>(hi - lo) / 1e9;
      }
      return total;
    }
  }
  return 0;
}

// ---- ItemSizeDistribution
// ------------------------------------------------------------------------

ItemSizeDistribution ItemSizeDistribution::fixed(uint64_t bytes) {
  ItemSizeDistribution distribution;
  distribution.kind = Kind::kFixed;
  distribution.fixed_bytes = bytes;
  return distribution;
}

const char* to_string(ItemSizeDistribution::Kind kind) {
  switch (kind) {
    case ItemSizeDistribution::Kind::kFixed:
      return "fixed";
    case ItemSizeDistribution::Kind::kUniform:
      return "uniform";
    case ItemSizeDistribution::Kind::kLognormal:
      return "lognormal";
    case ItemSizeDistribution::Kind::kHistogram:
      return "histogram";
  }
  return "?";
}

uint64_t ItemSizeDistribution::draw(sim::Random& random) const {
  switch (kind) {
    case Kind::kFixed:
      return fixed_bytes;
    case Kind::kUniform:
      DYN_ASSERT(min_bytes <= max_bytes);
      return min_bytes + random.uniform_u64(max_bytes - min_bytes + 1);
    case Kind::kLognormal: {
      if (plant_lognormal_ignores_sigma) return median_bytes;
      const double mu = sim::det_log(static_cast<double>(median_bytes));
      // Truncated at the item limit by redrawing; the median is at most the limit, so each draw
      // is kept with probability 1/2 or more and 64 rejections in a row (2^-64) never happen in
      // practice. The bound keeps the loop finite all the same.
      for (int tries = 0; tries < 64; ++tries) {
        const double size = random.lognormal(mu, sigma);
        if (size <= static_cast<double>(kMaxWorkloadItemBytes)) {
          return std::max<uint64_t>(1, static_cast<uint64_t>(size + 0.5));
        }
      }
      return kMaxWorkloadItemBytes;
    }
    case Kind::kHistogram: {
      double total = 0;
      for (const Bucket& bucket : buckets) total += bucket.weight;
      DYN_ASSERT(total > 0);
      double draw = random.uniform_real(0, total);
      for (const Bucket& bucket : buckets) {
        if (draw < bucket.weight) return bucket.size_bytes;
        draw -= bucket.weight;
      }
      // Rounding left the draw past the last bucket: it belongs to the last positive one.
      for (auto it = buckets.rbegin(); it != buckets.rend(); ++it) {
        if (it->weight > 0) return it->size_bytes;
      }
      return buckets.back().size_bytes;
    }
  }
  return fixed_bytes;
}

double ItemSizeDistribution::mean_bytes() const {
  switch (kind) {
    case Kind::kFixed:
      return static_cast<double>(fixed_bytes);
    case Kind::kUniform:
      return (static_cast<double>(min_bytes) + static_cast<double>(max_bytes)) / 2;
    case Kind::kLognormal: {
      // E[S | S <= L] = median e^(sigma^2 / 2) Phi((ln L - mu) / sigma - sigma) / Phi((ln L - mu)
      // / sigma).
      const double median = static_cast<double>(median_bytes);
      if (sigma <= 0) return median;
      const double limit = static_cast<double>(kMaxWorkloadItemBytes);
      const double z = (sim::det_log(limit) - sim::det_log(median)) / sigma;
      return median * sim::det_exp(sigma * sigma / 2) * normal_cdf(z - sigma) / normal_cdf(z);
    }
    case Kind::kHistogram: {
      double total = 0;
      double weighted = 0;
      for (const Bucket& bucket : buckets) {
        total += bucket.weight;
        weighted += bucket.weight * static_cast<double>(bucket.size_bytes);
      }
      return weighted / total;
    }
  }
  return 0;
}

double ItemSizeDistribution::expected_units(uint64_t unit_bytes) const {
  DYN_ASSERT(unit_bytes > 0);
  switch (kind) {
    case Kind::kFixed:
      return static_cast<double>(ceil_div(fixed_bytes, unit_bytes));
    case Kind::kUniform: {
      // Sizes min..max each with probability 1 / count; count the sizes of each unit count.
      double total = 0;
      for (uint64_t units = ceil_div(min_bytes, unit_bytes);
           units <= ceil_div(max_bytes, unit_bytes); ++units) {
        const uint64_t lo = std::max(min_bytes, (units - 1) * unit_bytes + 1);
        const uint64_t hi = std::min(max_bytes, units * unit_bytes);
        if (hi >= lo) total += static_cast<double>(units) * static_cast<double>(hi - lo + 1);
      }
      return total / static_cast<double>(max_bytes - min_bytes + 1);
    }
    case Kind::kLognormal: {
      // E[ceil(S / u)] = sum over j >= 0 of P(S > j u), for S in (0, L] (truncated at L).
      const double limit = static_cast<double>(kMaxWorkloadItemBytes);
      const double inside = lognormal_cdf(*this, limit);
      double total = 1;  // j = 0: every size is above 0
      for (uint64_t j = 1; j * unit_bytes < kMaxWorkloadItemBytes; ++j) {
        const double below =
            lognormal_cdf(*this, static_cast<double>(j * unit_bytes));  // P(S <= j u)
        total += (inside - std::min(below, inside)) / inside;
      }
      return total;
    }
    case Kind::kHistogram: {
      double total = 0;
      double weighted = 0;
      for (const Bucket& bucket : buckets) {
        total += bucket.weight;
        weighted += bucket.weight * static_cast<double>(ceil_div(bucket.size_bytes, unit_bytes));
      }
      return weighted / total;
    }
  }
  return 0;
}

// ---- CloudWatch --------------------------------------------------------------------------------

double capacity_units_per_operation(CapacityMetric metric, const MixWeights& mix,
                                    const ItemSizeDistribution& sizes, uint32_t scan_page_items) {
  const double total = mix.total();
  DYN_ASSERT(total > 0);
  if (metric == CapacityMetric::kConsumedWriteCapacityUnits) {
    const double writes = mix.put + mix.put_if_version + mix.put_if_absent + mix.delete_item;
    return writes / total * sizes.expected_units(1024) + mix.update / total;
  }
  const double reads =
      (mix.get_strong + mix.get_eventual / 2 + mix.query) / total * sizes.expected_units(4096);
  if (mix.scan <= 0) return reads;  // no page term: the figure stays bit for bit what it was
  const double page_units =
      std::ceil(static_cast<double>(scan_page_items) * sizes.mean_bytes() / 4096.0);
  return reads + mix.scan / total * 0.75 * page_units;
}

bool parse_utc_timestamp(std::string_view text, int64_t* seconds_since_epoch) {
  // YYYY-MM-DD[T ]HH:MM:SS[.fff][Z|+00:00|+0000]
  auto digits = [&](size_t at, size_t count, int* out) {
    if (at + count > text.size()) return false;
    int value = 0;
    for (size_t i = at; i < at + count; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      value = value * 10 + (text[i] - '0');
    }
    *out = value;
    return true;
  };
  int year, month, day, hour, minute, second;
  if (!digits(0, 4, &year) || text.size() < 19 || text[4] != '-' || !digits(5, 2, &month) ||
      text[7] != '-' || !digits(8, 2, &day) || (text[10] != 'T' && text[10] != ' ') ||
      !digits(11, 2, &hour) || text[13] != ':' || !digits(14, 2, &minute) || text[16] != ':' ||
      !digits(17, 2, &second)) {
    return false;
  }
  size_t at = 19;
  if (at < text.size() && text[at] == '.') {  // a fraction: CloudWatch writes ".000"
    ++at;
    const size_t start = at;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9') {
      if (text[at] != '0') return false;  // datapoints start on whole seconds
      ++at;
    }
    if (at == start) return false;
  }
  const std::string_view zone = text.substr(at);
  if (!(zone.empty() || zone == "Z" || zone == "+00:00" || zone == "+0000")) return false;
  if (year < 1970 || month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) {
    return false;
  }
  const auto leap = [](int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; };
  static constexpr int kDaysIn[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const int days_in_month = kDaysIn[month - 1] + (month == 2 && leap(year) ? 1 : 0);
  if (day < 1 || day > days_in_month) return false;
  int64_t days = 0;
  for (int y = 1970; y < year; ++y) days += leap(y) ? 366 : 365;
  for (int m = 1; m < month; ++m) days += kDaysIn[m - 1] + (m == 2 && leap(year) ? 1 : 0);
  days += day - 1;
  *seconds_since_epoch = ((days * 24 + hour) * 60 + minute) * 60 + second;
  return true;
}

std::vector<double> parse_cloudwatch_csv(std::string_view text, const std::string& file_name,
                                         const CloudWatchColumns& columns,
                                         const std::string& json_path) {
  const auto fail = [&](size_t line, size_t column, std::string expected, std::string found,
                        std::string hint = {}) {
    throw ScenarioError(json_path, std::move(expected), std::move(found), std::move(hint),
                        FileLocation{file_name, line, column});
  };
  // Splits a line at commas; each cell with its 1-based column, blanks and surrounding double
  // quotes removed.
  struct Cell {
    std::string text;
    size_t column;
  };
  const auto split = [](std::string_view line) {
    std::vector<Cell> cells;
    size_t start = 0;
    while (true) {
      const size_t comma = line.find(',', start);
      std::string_view cell = line.substr(
          start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
      size_t column = start + 1;
      while (!cell.empty() && (cell.front() == ' ' || cell.front() == '\t')) {
        cell.remove_prefix(1);
        ++column;
      }
      while (!cell.empty() && (cell.back() == ' ' || cell.back() == '\t')) cell.remove_suffix(1);
      if (cell.size() >= 2 && cell.front() == '"' && cell.back() == '"') {
        cell = cell.substr(1, cell.size() - 2);
        ++column;
      }
      cells.push_back(Cell{std::string(cell), column});
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    return cells;
  };

  struct Row {
    int64_t seconds;
    double units;
    size_t line;
  };
  std::vector<Row> rows;
  size_t timestamp_index = 0;
  size_t value_index = 0;
  bool have_header = false;
  size_t line_number = 0;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t end = std::min(text.find('\n', at), text.size());
    std::string_view line = text.substr(at, end - at);
    at = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_number == 1 && line.starts_with("\xEF\xBB\xBF")) line.remove_prefix(3);  // BOM
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;            // blank
    const std::vector<Cell> cells = split(line);
    if (!have_header) {
      have_header = true;
      std::vector<std::string> names;
      for (const Cell& cell : cells) names.push_back(cell.text);
      const auto index_of = [&](const std::string& name) {
        return static_cast<size_t>(std::find(names.begin(), names.end(), name) - names.begin());
      };
      timestamp_index = index_of(columns.timestamp);
      value_index = index_of(columns.value);
      for (const auto& [index, name] :
           {std::pair{timestamp_index, columns.timestamp}, std::pair{value_index, columns.value}}) {
        if (index < names.size()) continue;
        const std::string suggestion = did_you_mean(name, names);
        fail(line_number, 1,
             "a header row with the columns " + quote_for_message(columns.timestamp) + " and " +
                 quote_for_message(columns.value),
             "no column " + quote_for_message(name) + " in the header " +
                 quote_for_message(std::string(line), 120),
             suggestion.empty() ? "name the columns with timestamp_column and value_column"
                                : "did you mean " + quote_for_message(suggestion) + "?");
      }
      continue;
    }
    const size_t needed = std::max(timestamp_index, value_index) + 1;
    if (cells.size() < needed) {
      fail(line_number, 1, "at least " + std::to_string(needed) + " comma-separated cells",
           std::to_string(cells.size()) + " in " + quote_for_message(std::string(line), 120));
    }
    const Cell& stamp = cells[timestamp_index];
    const Cell& value = cells[value_index];
    Row row{0, 0, line_number};
    if (!parse_utc_timestamp(stamp.text, &row.seconds)) {
      fail(line_number, stamp.column,
           "a UTC time stamp such as \"2024-05-01T12:00:00Z\" or \"2024-05-01 12:00:00\"",
           quote_for_message(stamp.text));
    }
    const char* first = value.text.data();
    const char* last = first + value.text.size();
    const auto [end_of_number, error] = std::from_chars(first, last, row.units);
    if (value.text.empty() || error != std::errc() || end_of_number != last ||
        !std::isfinite(row.units) || row.units < 0) {
      fail(line_number, value.column, "a non-negative number of capacity units",
           value.text.empty() ? std::string("an empty cell") : quote_for_message(value.text));
    }
    rows.push_back(row);
  }
  if (rows.empty()) {
    fail(line_number, 1, "a header row and at least one datapoint row",
         have_header ? "no datapoint rows" : "an empty file");
  }
  std::stable_sort(rows.begin(), rows.end(),
                   [](const Row& a, const Row& b) { return a.seconds < b.seconds; });
  const int64_t first_seconds = rows.front().seconds;
  std::vector<double> per_minute;
  int64_t previous = -1;
  for (const Row& row : rows) {
    const int64_t offset = row.seconds - first_seconds;
    if (offset % 60 != 0) {
      fail(row.line, 1,
           "datapoints whole minutes apart (a 60 s period, from the earliest row's time)",
           "a row " + std::to_string(offset) + " s after the earliest",
           "export the Sum with a period of 60 seconds");
    }
    if (offset == previous) {
      fail(row.line, 1, "one datapoint per minute", "a second row for the same minute");
    }
    previous = offset;
    const auto minute = static_cast<size_t>(offset / 60);
    if (minute >= kMaxReplayMinutes) {
      fail(row.line, 1,
           "at most " + std::to_string(kMaxReplayMinutes) + " minutes from the earliest row",
           "a row " + std::to_string(minute) + " minutes after it");
    }
    per_minute.resize(minute + 1, 0.0);  // a minute without a row consumed nothing
    per_minute[minute] = row.units;
  }
  return per_minute;
}

}  // namespace dynasim::gameday
