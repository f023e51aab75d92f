"""The built-in tasks, each a complete `Task` document built from the shared architectures."""

from __future__ import annotations

from collections.abc import Callable

from disco.catalog.shakespeare import shakespeare
from disco.models import architectures as arch
from disco.task import ColumnSpec, DisplayInfo, Task, TrainingInfo

__all__ = ["BUILTIN"]

FASHION_LABELS = (
    "t-shirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle-boot",
)  # fmt: skip
CIFAR10_LABELS = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

# Preprocessing fixed by the task (mean/std of the public Kaggle training file).
TITANIC_COLUMNS = (
    ColumnSpec(name="Pclass", mean=2.309, std=0.836),
    ColumnSpec(name="Sex", categories=("male", "female")),
    ColumnSpec(name="Age", fill=28.0, mean=29.699, std=14.516),
    ColumnSpec(name="SibSp", mean=0.523, std=1.102),
    ColumnSpec(name="Parch", mean=0.382, std=0.806),
    ColumnSpec(name="Fare", fill=14.45, mean=32.204, std=49.666),
)

_BC_NAMES = (
    "mean_radius mean_texture mean_perimeter mean_area mean_smoothness mean_compactness "
    "mean_concavity mean_concave_points mean_symmetry mean_fractal_dimension "
    "radius_error texture_error perimeter_error area_error smoothness_error compactness_error "
    "concavity_error concave_points_error symmetry_error fractal_dimension_error "
    "worst_radius worst_texture worst_perimeter worst_area worst_smoothness worst_compactness "
    "worst_concavity worst_concave_points worst_symmetry worst_fractal_dimension"
).split()
_BC_MEAN = (
    14.13, 19.29, 91.97, 654.9, 0.09636, 0.1043, 0.0888, 0.04892, 0.1812, 0.0628,
    0.4052, 1.217, 2.866, 40.34, 0.007041, 0.02548, 0.03189, 0.0118, 0.02054, 0.003795,
    16.27, 25.68, 107.3, 880.6, 0.1324, 0.2543, 0.2722, 0.1146, 0.2901, 0.08395,
)  # fmt: skip
_BC_STD = (
    3.521, 4.297, 24.28, 351.6, 0.01405, 0.05277, 0.07965, 0.03877, 0.02739, 0.007054,
    0.2771, 0.5512, 2.02, 45.45, 0.003, 0.01789, 0.03016, 0.006165, 0.008259, 0.002644,
    4.829, 6.141, 33.57, 568.9, 0.02281, 0.1572, 0.2084, 0.06567, 0.06181, 0.01805,
)  # fmt: skip
BREAST_CANCER_COLUMNS = tuple(
    ColumnSpec(name=n, mean=m, std=s) for n, m, s in zip(_BC_NAMES, _BC_MEAN, _BC_STD, strict=True)
)


def titanic() -> Task:
    """Who survived the Titanic, from passenger class, sex, age, family aboard and fare."""
    return Task(
        id="titanic",
        display=DisplayInfo(
            title="Titanic survival",
            summary="Predict whether a passenger of the Titanic survived, from the passenger "
            "list. A small tabular task to try collaborative learning.",
            data_format="A CSV file with a header row and the columns Pclass, Sex, Age, SibSp, "
            "Parch, Fare and Survived (0 or 1). Other columns are ignored; an empty Age or Fare "
            "is filled with the median.",
            example="PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,"
            'Embarked\n1,0,3,"Braund, Mr. Owen Harris",male,22,1,0,A/5 21171,7.25,,S',
            model_description="A fully connected network 124-64-32-1 with a sigmoid output.",
            sample_data="disco data samples --task titanic --clients 3 --out DIR",
        ),
        training=TrainingInfo(
            data_type="tabular",
            epochs=20,
            epochs_per_round=2,
            batch_size=32,
            validation_split=0.2,
            input_columns=TITANIC_COLUMNS,
            output_column="Survived",
            labels=("died", "survived"),
            min_participants=2,
        ),
        model=arch.titanic_mlp(len(TITANIC_COLUMNS)),
    )


def breast_cancer() -> Task:
    """Malignant or benign breast mass, from 30 measurements of a fine-needle aspirate."""
    return Task(
        id="breast_cancer",
        display=DisplayInfo(
            title="Breast cancer diagnosis",
            summary="Tell malignant from benign breast masses using 30 features computed from "
            "digitised fine-needle aspirate images (Wisconsin diagnostic data). Hospitals keep "
            "their patient records and still train one model together.",
            data_format="A CSV file with the 30 feature columns (mean_radius ... "
            "worst_fractal_dimension) and a 'target' column: malignant or benign "
            "(or 0 = malignant, 1 = benign).",
            example="mean_radius,mean_texture,...,worst_fractal_dimension,target\n"
            "17.99,10.38,...,0.1189,0",
            model_description="A fully connected network 32-16-1 with a sigmoid output.",
            sample_data="disco data samples --task breast_cancer --clients 4 --out DIR",
        ),
        training=TrainingInfo(
            data_type="tabular",
            epochs=10,
            epochs_per_round=1,
            batch_size=16,
            learning_rate=0.01,
            validation_split=0.2,
            input_columns=BREAST_CANCER_COLUMNS,
            output_column="target",
            labels=("malignant", "benign"),
            min_participants=2,
        ),
        model=arch.breast_cancer_mlp(len(BREAST_CANCER_COLUMNS)),
    )


def _image_task(
    id: str,
    title: str,
    summary: str,
    labels: tuple[str, ...],
    size: tuple[int, int, int],
    model_description: str,
    epochs: int,
    **training: object,
) -> Task:
    h, w, c = size
    return Task(
        id=id,
        display=DisplayInfo(
            title=title,
            summary=summary,
            data_format=f"Images (PNG or JPEG), resized to {w}x{h} "
            f"{'greyscale' if c == 1 else 'colour'} (pictures of about that shape, at least "
            f"{(w + 1) // 2}x{(h + 1) // 2}). Either one folder per label "
            f"({', '.join(labels)}) or a labels.csv with columns filename,label next to the "
            "images.",
            example=f"{labels[0]}/00001.png, {labels[1]}/00002.png, ...",
            model_description=model_description,
            sample_data=f"disco data samples --task {id} --clients 3 --out DIR",
        ),
        training=TrainingInfo(
            data_type="image",
            epochs=epochs,
            image_height=h,
            image_width=w,
            channels=c,  # type: ignore[arg-type]
            labels=labels,
            **training,  # type: ignore[arg-type]
        ),
        model={
            "mnist": arch.mnist_cnn,
            "fashion_mnist": arch.mnist_cnn,
            "cifar10": arch.cifar10_cnn,
            "lus_covid": arch.lus_covid_cnn,
        }[id](h, w, c, len(labels)),
    )


def mnist() -> Task:
    """Handwritten digits 0-9."""
    return _image_task(
        "mnist",
        "Handwritten digits (MNIST)",
        "Recognise handwritten digits 0 to 9 from 28x28 greyscale images.",
        tuple(str(d) for d in range(10)),
        (28, 28, 1),
        "A small convolutional network: two 5x5 convolutions, max pooling, dropout, "
        "a dense layer of 32 and a softmax over 10 digits.",
        epochs=10,
        epochs_per_round=2,
        learning_rate=0.002,
        batch_size=32,
        min_participants=2,
    )


def fashion_mnist() -> Task:
    """Clothing items in 10 classes."""
    return _image_task(
        "fashion_mnist",
        "Clothing items (Fashion-MNIST)",
        "Recognise 10 kinds of clothing (t-shirt, trouser, ..., ankle boot) from 28x28 "
        "greyscale photos.",
        FASHION_LABELS,
        (28, 28, 1),
        "The MNIST convolutional network, trained on clothing.",
        epochs=10,
        epochs_per_round=2,
        learning_rate=0.002,
        batch_size=32,
        min_participants=2,
    )


def cifar10() -> Task:
    """Small colour photos in 10 classes."""
    return _image_task(
        "cifar10",
        "Objects in photos (CIFAR-10)",
        "Recognise 10 kinds of objects (airplane, car, bird, ...) in 32x32 colour photos.",
        CIFAR10_LABELS,
        (32, 32, 3),
        "A MobileNet-style network (depthwise-separable convolutions, batch norm), "
        "randomly initialised.",
        epochs=10,
        batch_size=32,
        min_participants=2,
    )


def lus_covid() -> Task:
    """COVID-19 from lung ultrasound images."""
    return _image_task(
        "lus_covid",
        "COVID-19 from lung ultrasound",
        "Tell COVID-positive from COVID-negative patients from lung ultrasound images. "
        "Hospitals keep their images and train one model together.",
        ("covid-negative", "covid-positive"),
        (100, 100, 3),
        "Two convolution + pooling blocks and a softmax over the two classes.",
        epochs=10,
        batch_size=8,
        min_participants=2,
    )


BUILTIN: dict[str, Callable[[], Task]] = {
    "titanic": titanic,
    "mnist": mnist,
    "fashion_mnist": fashion_mnist,
    "breast_cancer": breast_cancer,
    "cifar10": cifar10,
    "lus_covid": lus_covid,
    "shakespeare": shakespeare,
}
