//! `data::load`: read the data set a run asked for, check its labels, fix its normalisation and class
//! names.

use super::*;

/// Check that test images match the training shape.
fn check_shapes(train: &Dataset, test: &Dataset, test_path: &Path) -> Result<()> {
    if test.shape != train.shape {
        return Err(Error::data(
            test_path,
            format!(
                "test images are {}x{}, training images {}x{}; they must match",
                test.shape.height, test.shape.width, train.shape.height, train.shape.width
            ),
        ));
    }
    Ok(())
}

/// How to read a data set beyond where it is: the training subset and the class declarations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadOptions {
    /// Keep the first N training images.
    pub train_size: Option<usize>,
    /// `--num-classes K`: allow classes without training images.
    pub num_classes: Option<usize>,
    /// `--class-names`.
    pub class_names: Option<Vec<String>>,
}

/// Load the data a run asked for. `opts.train_size` keeps the first N training images (after
/// normalisation statistics are fixed, so a subset is normalised like the whole set); labels are checked
/// by [`labels::check`] before the subset is taken.
pub fn load(choice: &DataChoice, opts: &LoadOptions) -> Result<DataSplit> {
    let system = Path::new(SYSTEM_FASHION_MNIST);
    let (loaded, source, fashion, dir) = match choice {
        DataChoice::Dir(dir) | DataChoice::DirWith(dir, _) => {
            let opts = match choice {
                DataChoice::DirWith(_, o) => o.clone(),
                _ => DirOptions::default(),
            };
            let loaded = load_dir(dir, &opts)?;
            let src = DataSource {
                name: dir
                    .file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "data".into()),
                location: dir.display().to_string(),
            };
            (loaded, src, false, Some(dir.as_path()))
        }
        DataChoice::Default if system.is_dir() => {
            let (train, test) = load_idx_dir(system)?;
            let src = DataSource {
                name: "fashion-mnist".into(),
                location: SYSTEM_FASHION_MNIST.into(),
            };
            let loaded = Loaded {
                train,
                test,
                names: None,
                label_files: idx_labels(system),
            };
            (loaded, src, true, Some(system))
        }
        DataChoice::Default | DataChoice::Embedded => {
            let (train, test) = load_embedded()?;
            let src = DataSource {
                name: "fashion-mnist-subset".into(),
                location: "embedded (assets/fashion-mnist-subset)".into(),
            };
            let e = |s: &str| PathBuf::from(format!("<embedded>/{s}-labels-idx1-ubyte.gz"));
            let loaded = Loaded {
                train,
                test,
                names: None,
                label_files: (e("train"), e("t10k")),
            };
            (loaded, src, true, None)
        }
    };
    let Loaded {
        train,
        test,
        names,
        label_files,
    } = loaded;
    check_shapes(&train, &test, &label_files.1)?;
    let classes = labels::check(
        &train,
        &test,
        opts.num_classes,
        &label_files.0,
        &label_files.1,
    )?;
    let normalization = if fashion {
        Normalization {
            mean: vec![FASHION_MNIST_MEAN],
            std: vec![FASHION_MNIST_STD],
        }
    } else {
        Normalization::from_data(&train)
    };
    let format_names = names.or_else(|| {
        (fashion && classes.count == 10).then(|| {
            FASHION_MNIST_CLASSES
                .iter()
                .map(|s| s.to_string())
                .collect()
        })
    });
    let class_names = labels::names(classes.count, opts.class_names.clone(), dir, format_names)?;
    let mut train = train;
    if let Some(n) = opts.train_size {
        if n == 0 {
            return Err(Error::Config("--train-size must be at least 1".into()));
        }
        train.truncate(n);
    }
    Ok(DataSplit {
        train,
        val: None,
        test,
        normalization,
        num_classes: classes.count,
        empty_classes: classes.empty,
        class_names,
        source,
    })
}
