/* users.c -- demo users: drifting interests, sessions, time-ordered histories.
 *
 * A user is, from their own stream (seed, USER, u):
 *   - a history length 5 + (mean-5) Y, Y Lomax (Pareto II, alpha 2) with
 *     mean 1, capped at 30: the median user has ~20 events at mean 40, one
 *     in ten over 100, the heaviest about a thousand;
 *   - 1-4 interest topics (drawn by topic popularity), each with a favourite
 *     theme and a weight that moves linearly from w0 to w1 along the history
 *     (some interests grow, some fade); a third of users also pick up a new
 *     interest part-way through, which ramps up from nothing;
 *   - sessions of 1-10 events: a session follows one interest (mostly its
 *     favourite theme); 15% of events detour to another interest and 3% are
 *     exploration anywhere in the catalog; 5% re-view a recent item;
 *   - items drawn by popularity within the chosen topic/theme, redrawn when
 *     already seen so that re-views are the deliberate 5%, not accidents;
 *   - kinds: 85% view (weight 1), 12% like (2), 3% purchase (3);
 *   - times: the user is active over a window of the year 2024 (longer for
 *     heavier users); events in a session are 20 s - 15 min apart, sessions
 *     at least 30 min apart with random (occasionally long) breaks, spread
 *     to fill the window.  Timestamps strictly increase along a history.
 *
 * So the recent past predicts the next item: it is probably from the same
 * session's topic and theme, or from an interest that is currently strong.
 */
#include "store/gen/world.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_INTERESTS 5
#define S_LOMAX_CAP 30.0
#define S_EXPLORE_P 0.03      /* an event anywhere in the catalog */
#define S_DETOUR_P 0.15       /* an event from another interest */
#define S_REPEAT_P 0.05       /* re-view of a recent item */
#define S_REDRAWS 8           /* tries to find an unseen item */
#define S_SESSION_GAP 1800    /* seconds between sessions, at least */

const char *const store_gen_kind_name[3] = {"view", "like", "purchase"};
const float store_gen_kind_weight[3] = {1.0f, 2.0f, 3.0f};

typedef struct s_interest {
    int topic;
    int theme;        /* favourite theme, or -1 when it has no items */
    double w0, w1;    /* weight at the start and the end of the history */
    double from;      /* history fraction where it appears (0: from the start) */
} s_interest;

typedef struct s_user {
    s_interest in[S_MAX_INTERESTS];
    int n_in;
} s_user;

static double s_weight(const s_interest *x, double f)
{
    if (f < x->from)
        return 0.0;
    if (x->from > 0.0) {        /* a new interest ramps up over 20% of the history */
        double ramp = (f - x->from) / 0.2;
        return x->w1 * (ramp < 1.0 ? ramp : 1.0);
    }
    return x->w0 + (x->w1 - x->w0) * f;
}

static int s_pick_interest(const s_user *us, double f, store_gen_rng *r)
{
    double w[S_MAX_INTERESTS], sum = 0;
    for (int j = 0; j < us->n_in; j++)
        sum += (w[j] = s_weight(&us->in[j], f));
    double x = store_gen_uniform(r) * sum;
    for (int j = 0; j < us->n_in; j++) {
        if (x < w[j])
            return j;
        x -= w[j];
    }
    return 0;    /* rounding at the top end: the first interest always has weight */
}

static int s_has_topic(const s_user *us, int t)
{
    for (int j = 0; j < us->n_in; j++)
        if (us->in[j].topic == t)
            return 1;
    return 0;
}

/* A topic with items that the user does not follow yet, or -1. */
static int s_new_topic(const store_gen_world *w, const s_user *us, store_gen_rng *r)
{
    if (w->topic_cdf.n <= (uint32_t)us->n_in)
        return -1;
    for (int tries = 0; tries < 1000; tries++) {
        int t = (int)store_gen_cdf_draw(&w->topic_cdf, r);
        if (!s_has_topic(us, t))
            return t;
    }
    /* Defensive: 1000 misses only if a few followed topics hold nearly all
     * the weight; take the first free one in order. */
    for (uint32_t k = 0; k < w->topic_cdf.n; k++)
        if (!s_has_topic(us, (int)w->topic_cdf.item[k]))
            return (int)w->topic_cdf.item[k];
    return -1;
}

static void s_add_interest(const store_gen_world *w, s_user *us, int t, double w0,
                           double w1, double from, store_gen_rng *r)
{
    s_interest *x = &us->in[us->n_in++];
    x->topic = t;
    x->theme = (int)store_gen_below(r, STORE_GEN_THEMES);
    if (!w->by_theme[t][x->theme].n)
        x->theme = -1;
    x->w0 = w0;
    x->w1 = w1;
    x->from = from;
}

static void s_interests(const store_gen_world *w, s_user *us, uint32_t n, store_gen_rng *r)
{
    static const double k_cum[4] = {0.25, 0.60, 0.85, 1.0};   /* 1..4 interests */
    double x = store_gen_uniform(r);
    int k = 1;
    while (k < 4 && x >= k_cum[k - 1])
        k++;
    us->n_in = 0;
    for (int j = 0; j < k; j++) {
        int t = s_new_topic(w, us, r);
        if (t < 0)
            break;
        /* The first interest dominates; each fades or grows by up to 4x. */
        double w0 = 0.2 + store_gen_uniform(r) + (j == 0 ? 1.0 : 0.0);
        double w1 = w0 * (0.25 + 1.5 * store_gen_uniform(r));
        s_add_interest(w, us, t, w0, w1, 0.0, r);
    }
    if (n >= 10 && store_gen_chance(r, 0.35)) {
        int t = s_new_topic(w, us, r);
        if (t >= 0)
            s_add_interest(w, us, t, 0.0, 0.6 + 1.2 * store_gen_uniform(r),
                           0.25 + 0.6 * store_gen_uniform(r), r);
    }
}

static int s_reserve(store_gen_history *h, uint32_t n)
{
    if (n > h->cap) {
        uint32_t cap = h->cap ? h->cap : 64;
        while (cap < n)
            cap *= 2;
        store_gen_event *ev = realloc(h->ev, (size_t)cap * sizeof *ev);
        if (ev)
            h->ev = ev;
        uint32_t *gap = realloc(h->gap, (size_t)cap * sizeof *gap);
        if (gap)
            h->gap = gap;
        uint8_t *starts = realloc(h->starts, cap);
        if (starts)
            h->starts = starts;
        if (!ev || !gap || !starts)
            return STORE_ERR_NOMEM;
        h->cap = cap;
    }
    if (util_set_reserve(&h->seen, n) != 0)
        return STORE_ERR_NOMEM;
    return STORE_OK;
}

/* An item of topic t (theme th, or any when th < 0 or the theme is empty),
 * preferring one the user has not seen. */
static uint32_t s_draw_item(const store_gen_world *w, const store_gen_history *h, int t,
                            int th, store_gen_rng *r)
{
    const store_gen_cdf *c = th >= 0 && w->by_theme[t][th].n ? &w->by_theme[t][th]
                                                              : &w->by_topic[t];
    uint32_t item = store_gen_cdf_draw(c, r);
    for (int k = 1; k < S_REDRAWS && util_set_has(&h->seen, item); k++)
        item = store_gen_cdf_draw(c, r);
    return item;
}

/* Pass 1: what each event is, and the raw time gaps (seconds within a
 * session; for a session start, the break before it in 1/1000 units). */
static void s_events(const store_gen_world *w, const s_user *us, store_gen_history *h,
                     store_gen_rng *r)
{
    uint32_t n = h->n, left = 0;
    int s_topic = 0, s_theme = -1;
    for (uint32_t i = 0; i < n; i++) {
        double f = (double)i / (double)n;
        h->starts[i] = 0;
        if (left == 0) {
            left = 1 + store_gen_below(r, 3) +
                   (uint32_t)(8.0 * store_gen_uniform(r) * store_gen_uniform(r));
            const s_interest *x = &us->in[s_pick_interest(us, f, r)];
            s_topic = x->topic;
            s_theme = store_gen_chance(r, 0.65) ? x->theme : -1;
            double unit = store_gen_uniform(r) + store_gen_uniform(r);
            if (store_gen_chance(r, 0.08))
                unit *= 5.0;                          /* a holiday */
            h->starts[i] = 1;
            h->gap[i] = (uint32_t)(unit * 1000.0);
        } else {
            h->gap[i] = 20 + store_gen_below(r, 880);
        }
        left--;

        int t = s_topic, th = s_theme;
        double x = store_gen_uniform(r);
        if (x < S_EXPLORE_P) {
            t = (int)store_gen_cdf_draw(&w->topic_cdf, r);
            th = -1;
        } else if (x < S_EXPLORE_P + S_DETOUR_P) {
            const s_interest *d = &us->in[s_pick_interest(us, f, r)];
            t = d->topic;
            th = store_gen_chance(r, 0.5) ? d->theme : -1;
        } else if (th >= 0 && store_gen_chance(r, 0.25)) {
            th = -1;                                  /* same topic, another theme */
        }

        uint32_t item;
        if (i >= 2 && store_gen_chance(r, S_REPEAT_P)) {
            uint32_t back = i < 15 ? i : 15;
            item = h->ev[i - 1 - store_gen_below(r, back)].item;
        } else {
            item = s_draw_item(w, h, t, th, r);
        }
        util_set_add(&h->seen, item);

        double k = store_gen_uniform(r);
        h->ev[i].item = item;
        h->ev[i].kind = k < 0.03 ? STORE_GEN_PURCHASE : k < 0.15 ? STORE_GEN_LIKE : STORE_GEN_VIEW;
    }
}

/* Pass 2: timestamps.  The breaks between sessions are scaled so that the
 * history fills the user's active window. */
static void s_times(store_gen_history *h, uint32_t n, store_gen_rng *r)
{
    double year = (double)STORE_GEN_YEAR;
    double frac = 0.15 + 0.85 * store_gen_uniform(r) + (double)n / 400.0;
    if (frac > 1.0)
        frac = 1.0;
    double len = frac * year;
    double start = (double)STORE_GEN_EPOCH + (year - len) * store_gen_uniform(r);

    double in_session = 0, units = 0;
    uint32_t sessions = 0;
    for (uint32_t i = 1; i < n; i++) {
        if (h->starts[i]) {
            units += h->gap[i] / 1000.0;
            sessions++;
        } else {
            in_session += h->gap[i];
        }
    }
    double spare = len - in_session - (double)S_SESSION_GAP * sessions;
    double scale = spare > 0 && units > 0 ? spare / units : 0.0;

    int64_t ts = (int64_t)start;
    for (uint32_t i = 0; i < n; i++) {
        if (i > 0) {
            if (h->starts[i])
                ts += S_SESSION_GAP + (int64_t)(scale * (h->gap[i] / 1000.0));
            else
                ts += h->gap[i];
        }
        h->ev[i].ts = ts;
    }
}

int store_gen_user_history(const store_gen_world *w, uint32_t u, store_gen_history *h)
{
    store_gen_rng r;
    store_gen_rng_seed(&r, w->opt.seed, STORE_GEN_STREAM_USER, u);

    /* Lomax(alpha 2, scale 1) by inversion: 1/sqrt(1-u) - 1, mean 1, min 0.
     * 1 - uniform is in (0, 1], so y is finite.  The cap takes 1/(1+cap) off
     * the mean; dividing by that keeps the mean history length at m. */
    double y = 1.0 / sqrt(1.0 - store_gen_uniform(&r)) - 1.0;
    if (y > S_LOMAX_CAP)
        y = S_LOMAX_CAP;
    y *= (1.0 + S_LOMAX_CAP) / S_LOMAX_CAP;
    double m = w->opt.events_per_user;
    uint32_t n = 5 + (uint32_t)((m - 5.0) * y + 0.5);

    h->n = 0;
    if (s_reserve(h, n) != STORE_OK)
        return STORE_ERR_NOMEM;
    h->n = n;
    util_set_clear(&h->seen);          /* O(1): the previous user's items are gone */

    s_user us;
    s_interests(w, &us, n, &r);
    s_events(w, &us, h, &r);
    s_times(h, n, &r);
    return STORE_OK;
}

void store_gen_history_free(store_gen_history *h)
{
    free(h->ev);
    free(h->gap);
    free(h->starts);
    util_set_free(&h->seen);
    memset(h, 0, sizeof *h);
}
